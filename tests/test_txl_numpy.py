"""The torch-free Transformer-XL runtime (lakhnes.models.txl_numpy) against the torch model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lakhnes.errors import InvalidInputError
from lakhnes.models.txl_numpy import NumpyStepper, NumpySteps, NumpyTXL

ROOT = Path(__file__).resolve().parent.parent
SONG = Path(__file__).parent / "fixtures/nesmdb/079_DoubleDragonIII_TheSacredStones_13_14GiulianosThemeBoss4.mid"
SHIPPED = ROOT / "src/lakhnes/assets/default/model.safetensors"


def song_ids(n: int) -> np.ndarray:
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    return tx1.song_ids(tx1.score_to_events(read_midi(SONG))).astype(np.int64)[:n]


def torch_reference(model, ids: np.ndarray, n_prime: int) -> np.ndarray:
    """Logits after the prime (fed in tgt_len chunks, as generation feeds it), then after each
    further id through CachedSteps: what the torch generation path computes."""
    import torch

    from lakhnes.models.txl_step import CachedSteps

    x = torch.as_tensor(ids)[None] if ids.ndim == 1 else torch.as_tensor(ids)
    n, threads = model.config.tgt_len, torch.get_num_threads()
    torch.set_num_threads(1)  # small steps: a second thread only waits (100x slower on a loaded machine)
    try:
        with torch.inference_mode():
            state = model.init_state(x.size(0))
            for a in range(0, n_prime, n):
                out, state = model(x[:, a : min(n_prime, a + n)], state)
            logits = [out[:, -1].numpy()]
            steps = CachedSteps(model, state)
            logits += [steps.step(x[:, t]).numpy() for t in range(n_prime, x.size(1))]
    finally:
        torch.set_num_threads(threads)
    return np.stack(logits, 1)


def numpy_run(model: NumpyTXL, ids: np.ndarray, n_prime: int, cache: str) -> np.ndarray:
    ids = ids[None] if ids.ndim == 1 else ids
    steps = NumpyStepper(model, ids[:, :n_prime], cache=cache)
    return np.stack([steps.logits] + [steps.step(ids[:, t]) for t in range(n_prime, ids.shape[1])], 1)


@pytest.mark.parametrize("pre_norm,mem_len,tie", [(False, 6, True), (True, 6, True), (False, 0, True),
                                                  (True, 5, False)])
def test_tiny_model_matches_torch(pre_norm, mem_len, tie):
    torch = pytest.importorskip("torch")
    from lakhnes.models import build_model
    from lakhnes.models.txl_config import TransformerXLConfig

    torch.manual_seed(0)
    cfg = dict(n_layer=2, n_head=2, d_model=16, d_inner=32, tgt_len=4, mem_len=mem_len, dropout=0.0,
               pre_norm=pre_norm, tie_weights=tie)
    m = build_model("transformer_xl", cfg).eval()
    nm = NumpyTXL(TransformerXLConfig(**cfg), {k: v.numpy() for k, v in m.state_dict().items()})
    ids = np.random.default_rng(0).integers(0, 631, (2, 40))
    with torch.inference_mode():
        ref, ref_state = m(torch.as_tensor(ids[:, :11]))
    out, state = nm.forward(ids[:, :11])  # one chunk, many queries: the rel-shift and the mask
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5)
    for a, b in zip(state, ref_state, strict=True):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-6)
    ref = torch_reference(m, ids, 9)  # the windows slide past 2 * mem_len + 1 several times
    for cache in ("kv", "hidden"):
        np.testing.assert_allclose(numpy_run(nm, ids, 9, cache), ref, atol=1e-5)


def test_shipped_model_matches_torch_on_a_real_song():
    """The shipped config's memory (128): the prime fills it, then the window slides past its buffer
    many times; 2,000 tokens of a real song, logits within 1e-4 at every position (the decoding
    runtime, ``kv``; ``hidden`` over the first 300). (Memories 896 and 2048:
    ``python benchmarks/bench_step_floor.py --check 2000``.)"""
    pytest.importorskip("torch")
    from lakhnes.models import load_model

    ids = song_ids(2000)
    assert len(ids) == 2000
    m, nm = load_model("default"), NumpyTXL.load("default")
    ref = torch_reference(m, ids, 130)
    from lakhnes.models import txl_kernel

    runs = (("kv", 2000), ("hidden", 300)) + ((("kernel", 2000),) if txl_kernel.usable(nm) else ())
    for cache, n in runs:  # kernel: the compiled step, where it is built
        err = np.abs(numpy_run(nm, ids[:n], 130, cache) - ref[:, : n - 129]).max()
        assert err < 1e-4, (cache, err)


def test_sharded_16_bit_folder_loads_like_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from lakhnes.models import build_model, load_model, save_model_sharded

    torch.manual_seed(0)
    m = build_model("transformer_xl", "tiny")
    for dtype in (torch.float16, torch.bfloat16):
        out = tmp_path / str(dtype)
        assert len(save_model_sharded(m, out, dtype=dtype, max_shard_bytes=50_000)) > 1
        tm, nm = load_model(out), NumpyTXL.load(out)
        ids = np.arange(30)[None] % 631
        ref = torch_reference(tm, ids, 10)
        np.testing.assert_allclose(numpy_run(nm, ids, 10, "kv"), ref, atol=1e-5)


def test_mem_len_override_and_bad_models(tmp_path):
    assert NumpyTXL.load("default", mem_len=896).config.mem_len == 896
    assert NumpyTXL.load("default").config.mem_len == json.loads((SHIPPED.parent / "config.json").read_text())[
        "config"]["mem_len"]
    with pytest.raises(InvalidInputError):
        NumpyTXL.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "lstm", "config": {}}))
    (tmp_path / "model.safetensors").write_bytes(SHIPPED.read_bytes())
    with pytest.raises(InvalidInputError, match="Transformer-XL"):
        NumpyTXL.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")  # truncated
    (tmp_path / "config.json").write_text((SHIPPED.parent / "config.json").read_text())
    with pytest.raises(InvalidInputError, match="cannot load weights"):
        NumpyTXL.load(tmp_path)
    with pytest.raises(ValueError):
        NumpySteps(NumpyTXL.load("default"), [], cache="nope")


def test_runs_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "import lakhnes.models.files\n"
        "from lakhnes.models.txl_numpy import load_numpy_model, prime\n"
        "m = load_numpy_model(mem_len=64)\n"
        "logits, steps = prime(m, np.array([[0, 5, 7]]))\n"
        "for t in range(70):\n"
        "    logits = steps.step(np.array([int(logits.argmax())]))\n"
        "assert logits.shape == (1, 631) and np.isfinite(logits).all()\n"
        "print('torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
