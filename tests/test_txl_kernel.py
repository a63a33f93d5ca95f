"""The compiled decoding step (lakhnes.models.txl_kernel) against the numpy step, and the fallback to
numpy where the extension is missing or cannot run a model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lakhnes.models import txl_kernel
from lakhnes.models.txl_config import TransformerXLConfig
from lakhnes.models.txl_numpy import NumpySteps, NumpyTXL, make_steps
from tests.subprocess_util import ENV, hide_module

ROOT = Path(__file__).resolve().parent.parent
SONG = ROOT / "tests/fixtures/nesmdb/079_DoubleDragonIII_TheSacredStones_13_14GiulianosThemeBoss4.mid"
#: makes the extension unimportable, as in an installation built without a C compiler
NO_KERNEL = hide_module("lakhnes.models._txl_kernel")
needs_kernel = pytest.mark.skipif(not txl_kernel.available(), reason="the compiled kernel is not built here")


def song_ids(n: int) -> np.ndarray:
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    return tx1.song_ids(tx1.score_to_events(read_midi(SONG))).astype(np.int64)[:n]


def instruction_sets() -> list[str]:
    """Every instruction set of the kernel this CPU runs (the best one last)."""
    if txl_kernel._k is None:
        return []
    best = txl_kernel.isa()
    runs = []
    for name in ("c", "avx2", "avx512"):
        try:
            txl_kernel.isa(name)
            runs.append(name)
        except ValueError:
            pass
    txl_kernel.isa(best)
    return runs


@needs_kernel
@pytest.mark.parametrize("name", instruction_sets())
def test_kernel_matches_the_numpy_step(name):
    """The shipped model, memory 64 (the window slides past its buffer several times), 2 rows of a real
    song, 330 steps after a 130-token prime: logits within 1e-4 of the numpy step, the runtimes' stated
    bound (float32 sums in another order; measured 3.5e-5 to 5.2e-5 on logits up to 17 with the shipped
    weights), in every instruction set this CPU runs."""
    m = NumpyTXL.load("default", mem_len=64)
    assert txl_kernel.fits(m)
    ids = song_ids(460)
    x = np.stack([ids[:453], ids[7:]])
    _, state = m.feed(x[:, :130])
    best = txl_kernel.isa()
    try:
        txl_kernel.isa(name)
        ref, got = NumpySteps(m, state), txl_kernel.KernelSteps(m, state)
        err = max(float(np.abs(ref.step(x[:, t]) - got.step(x[:, t])).max()) for t in range(130, 453))
    finally:
        txl_kernel.isa(best)
    assert err < 1e-4, err


@needs_kernel
def test_auto_picks_the_kernel_and_checks_ids():
    m = NumpyTXL.load("default", mem_len=16)
    _, state = m.feed(np.array([[0, 5, 7]]))
    steps = make_steps(m, state)
    assert isinstance(steps, txl_kernel.KernelSteps)
    assert steps.step(np.array([3])).shape == (1, 631)
    with pytest.raises(IndexError):
        steps.step(np.array([631]))
    with pytest.raises(IndexError):
        steps.step(np.array([-1]))


def random_model(d: int, heads: int, d_head: int, half: bool) -> NumpyTXL:
    """A one-layer Transformer-XL with random weights (float16 values with ``half``), memory 4."""
    rng = np.random.default_rng(0)
    hd = heads * d_head
    cfg = TransformerXLConfig(n_layer=1, n_head=heads, d_model=d, d_head=d_head, d_inner=64, tgt_len=4, mem_len=4,
                              dropout=0.0)
    shapes = {"emb.weight": (631, d), "u": (heads, d_head), "v": (heads, d_head), "out_bias": (631,),
              "attn.q.weight": (hd, d), "attn.kv.weight": (2 * hd, d), "attn.r.weight": (hd, d),
              "attn.o.weight": (d, hd), "ff.0.weight": (64, d), "ff.0.bias": (64,), "ff.3.weight": (d, 64),
              "ff.3.bias": (d,), "ln1.weight": (d,), "ln1.bias": (d,), "ln2.weight": (d,), "ln2.bias": (d,)}
    state = {}
    for k, shape in shapes.items():
        a = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        state[k if k in ("emb.weight", "u", "v", "out_bias") else f"layers.0.{k}"] = (
            a.astype(np.float16).astype(np.float32) if half else a)
    return NumpyTXL(cfg, state)


def test_models_the_kernel_cannot_run_fall_back_to_numpy(monkeypatch):
    """Weights that are not float16 values, shapes outside its blocks, or ``LAKHNES_KERNEL=0``: numpy."""
    for m in (random_model(64, 1, 64, half=False), random_model(16, 2, 8, half=True)):
        assert not txl_kernel.fits(m) and not txl_kernel.usable(m)
        _, mem = m.feed(np.array([[1, 2, 3]]))
        assert isinstance(make_steps(m, mem), NumpySteps)
    if txl_kernel.available():  # float16 values and a shape it runs: the kernel, as numpy computes
        m = random_model(64, 1, 64, half=True)
        assert txl_kernel.fits(m)
        _, mem = m.feed(np.array([[1, 2, 3]]))
        a, b = NumpySteps(m, mem), txl_kernel.KernelSteps(m, mem)
        assert isinstance(make_steps(m, mem), txl_kernel.KernelSteps) == txl_kernel.usable(m)
        for t in range(12):  # past the buffer of 2 * 4 + 1 positions
            np.testing.assert_allclose(a.step(np.array([t])), b.step(np.array([t])), atol=1e-5)
        best = txl_kernel.isa()
        try:  # the portable C path is slower than numpy: generation does not pick it
            txl_kernel.isa("c")
            assert not txl_kernel.usable(m) and isinstance(make_steps(m, mem), NumpySteps)
        finally:
            txl_kernel.isa(best)
    monkeypatch.setenv("LAKHNES_KERNEL", "0")
    assert not txl_kernel.available() and not txl_kernel.usable(NumpyTXL.load("default", mem_len=8))


@pytest.mark.light
def test_generates_without_the_extension_and_same_song_with_it(tmp_path):
    """``lakhnes generate`` with the extension unimportable (an installation without a C compiler) writes
    the same song for a seed as with it."""
    songs = {}
    for label, pre in (("without", NO_KERNEL), ("with", "")):
        code = pre + ("from lakhnes.cli import main\n"
                      "from lakhnes.models import txl_kernel\n"
                      "print('kernel', txl_kernel.available())\n"
                      f"sys.exit(main(['generate', '-q', '--seed', '5', '--tokens', '300', '-o', "
                      f"{str(tmp_path / label)!r} + '.tx1.txt']))\n")
        r = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True,
                           timeout=300, env=ENV, cwd=ROOT)
        assert r.returncode == 0, (label, r.stderr)
        if label == "without":
            assert "kernel False" in r.stdout
        songs[label] = (tmp_path / f"{label}.tx1.txt").read_text()
    assert "NOTEON" in songs["with"] and songs["with"] == songs["without"]
