"""The prepared GPU run (experiments/gpu): its CPU dry run, the device image's missing modules,
16-bit sharded model folders loading everywhere, and the figures it reports."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lakhnes.cli import main
from lakhnes.data.shards import ShardWriter, load_split, write_manifest
from lakhnes.errors import InvalidInputError
from lakhnes.evaluation.perplexity import evaluate_lm
from lakhnes.models import INDEX_FILE, build_model, load_model, resolve_checkpoint, save_model_sharded
from lakhnes.models import files as M

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "experiments" / "gpu"
sys.path.insert(0, str(GPU))
import ship  # noqa: E402
import tools  # noqa: E402

MICRO = dict(n_layer=2, n_head=2, d_model=32, d_inner=64, tgt_len=16, mem_len=16, dropout=0.0)
#: not in the device image (KINDS.md; the issue names the first three); scipy, matplotlib and
#: soundfile are hidden too, so that the training path is known to need none of them
HIDDEN = ["symusic", "tqdm", "fastapi", "uvicorn", "starlette", "pydantic", "multipart", "python_multipart",
          "soundfile", "scipy", "matplotlib"]
BLOCKER = f"""
import sys
HIDDEN = {HIDDEN!r}
class _Hide:  # every import finder, blind to HIDDEN: imports fail and find_spec says None, as if not installed
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory, nesmdb_fixture_files) -> Path:
    """A prepared folder from the committed NES-MDB files: train all, valid and test two songs each."""
    from lakhnes.core import tx1
    from lakhnes.formats.midi import read_midi

    songs = [tx1.song_ids(tx1.score_to_events(read_midi(f))) for f in nesmdb_fixture_files]
    songs = [s for s in songs if len(s) > 100]
    out = tmp_path_factory.mktemp("data")
    for split, ids in {"train": songs, "valid": songs[:2], "test": songs[2:4]}.items():
        w = ShardWriter(out, split)
        for k, s in enumerate(ids):
            w.add(f"{split}{k}", s)
        w.close()
    write_manifest(out, {"corpus": "test"})
    return out


def micro_model(seed=0):
    torch.manual_seed(seed)
    m = build_model("transformer_xl", MICRO)
    with torch.no_grad():  # not the init's zeros and ones: every tensor has its own values
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


# ----------------------------------------------------------------------------- shards


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sharded_folder_round_trip(tmp_path, dtype):
    m = micro_model()
    paths = save_model_sharded(m, tmp_path / "m", dtype=dtype, max_shard_bytes=41_000, metadata={"card": {"x": 1}})
    n = len(paths)
    assert n >= 2 and [p.name for p in paths] == [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    assert all(p.stat().st_size <= 41_000 for p in paths)  # whole files, headers included
    index = json.loads((tmp_path / "m" / INDEX_FILE).read_text())
    assert set(index["weight_map"]) == set(m.state_dict()) and set(index["weight_map"].values()) == {
        p.name for p in paths}
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in m.state_dict().values())
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["card"] == {"x": 1} and cfg["weights"]["dtype"] == str(dtype).removeprefix("torch.")
    back = load_model(tmp_path / "m")
    for k, t in m.state_dict().items():  # float32 again, exactly the 16-bit rounding of the original
        assert back.state_dict()[k].dtype == torch.float32
        assert torch.equal(back.state_dict()[k], t.to(dtype).float()), k
    assert resolve_checkpoint(tmp_path / "m" / INDEX_FILE) == tmp_path / "m"
    x = torch.randint(0, 631, (2, 16))
    assert torch.allclose(back(x)[0], m(x)[0], atol=0.05)
    # writing again with bigger shards leaves one layout, no stale files
    save_model_sharded(m, tmp_path / "m", dtype=dtype)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json", "model-00001-of-00001.safetensors", INDEX_FILE]


def test_sharded_folder_errors_name_the_file(tmp_path):
    m = micro_model()
    d = tmp_path / "m"
    save_model_sharded(m, d, max_shard_bytes=41_000)
    index = json.loads((d / INDEX_FILE).read_text())
    shard = sorted(set(index["weight_map"].values()))[1]

    def err(match):
        with pytest.raises(InvalidInputError, match=match) as e:
            load_model(d)
        return str(e.value)

    (d / shard).rename(d / "gone")
    assert err("shard listed in model.safetensors.index.json is missing").startswith(str(d / shard))
    (d / "gone").write_bytes(b"\x00" * 100)
    (d / "gone").rename(d / shard)
    assert err("cannot read shard").startswith(str(d / shard))
    save_model_sharded(m, d, max_shard_bytes=41_000)
    name = next(k for k, v in index["weight_map"].items() if v == shard)
    bad = {**index, "weight_map": {**index["weight_map"], name: sorted(set(index["weight_map"].values()))[0]}}
    (d / INDEX_FILE).write_text(json.dumps(bad))
    first = sorted(set(index["weight_map"].values()))[0]
    assert err(f"lacks 1 tensor\\(s\\) the index puts there \\(e.g. {name}\\)").startswith(str(d / first))
    (d / INDEX_FILE).write_text(json.dumps({**index, "weight_map": {**index["weight_map"], name: "../x.safetensors"}}))
    err("bad shard name")
    (d / INDEX_FILE).write_text("{")
    assert err("bad model.safetensors.index.json").startswith(str(d / INDEX_FILE))
    # shapes that do not fit config.json
    save_model_sharded(micro_model(), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["config"]["d_inner"] = 128
    (d / "config.json").write_text(json.dumps(cfg))
    err("shards do not fit config.json")
    with pytest.raises(InvalidInputError, match="over the 100-byte shard limit"):
        save_model_sharded(m, tmp_path / "small", max_shard_bytes=100)


def test_shipped_names(tmp_path, monkeypatch, data):
    """`large` (and `default`) name the packaged models; a clear message while none is shipped;
    generate, eval and the studio take the name or a sharded folder."""
    assets = tmp_path / "assets"
    monkeypatch.setattr(M, "shipped_model_path", lambda name: assets / name)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match="no 'large' model is shipped in this installation") as e:
        load_model("large")
    assert str(e.value).startswith(str(assets / "large"))
    assert main(["eval", "large", "--data", str(data), "--results", ""]) == 1
    save_model_sharded(micro_model(), assets / "large")
    assert resolve_checkpoint("large") == assets / "large"
    assert main(["generate", "-m", "large", "--seconds", "2", "--seed", "1", "-o", "t.mid", "--quiet"]) == 0
    assert Path("t.mid").stat().st_size > 0
    assert main(["eval", "large", "--data", str(data), "--split", "test", "--results", "", "--json", "e.json",
                 "--device", "cpu"]) == 0
    res = json.loads(Path("e.json").read_text())
    assert res["device"] == "cpu" and math.isfinite(res["ppl"])
    pytest.importorskip("fastapi")
    from lakhnes.studio.app import create_app

    app = create_app("large", tmp_path / "studio")  # the numpy runtime on a CPU: 16-bit shards widened
    model = app.state.model
    weight = model.w["emb.weight"] if hasattr(model, "w") else model.emb.weight
    assert str(weight.dtype).endswith("float32")


# ----------------------------------------------------------------------------- figures


def test_flops_formula_matches_a_flop_counter():
    """The formula behind the reported MFU, against torch's count of one real training step."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = dict(n_layer=2, n_head=4, d_model=64, d_inner=256, tgt_len=32, mem_len=64, dropout=0.0)
    m = build_model("transformer_xl", cfg)
    x = torch.randint(0, 631, (3, 32))
    with torch.no_grad():
        _, state = m(x)
        _, state = m(x, state)  # memory now full (64)
    with FlopCounterMode(display=False) as fc:
        logits, _ = m(x, state)
        logits.sum().backward()
    formula = tools.train_flops_per_token(dataclasses.asdict(m.config), 32, 64, 3) * x.numel()
    assert 0.97 < fc.get_total_flops() / formula < 1.03


def test_throughput_and_batch_size():
    rows = [{"step": str(s), "tokens": str(1000 * s), "elapsed_s": str(e), "train_loss": "3"}
            for s, e in [(50, 30.0), (100, 35.0), (150, 40.0), (200, 45.0)]]
    rows.insert(2, {"step": "100", "tokens": "100000", "elapsed_s": "35.0", "valid_ppl": "9", "train_loss": ""})
    t = tools.throughput(rows)
    assert t["tokens_per_s_steady"] == pytest.approx(10_000) and t["seconds_per_step_steady"] == pytest.approx(0.1)
    assert t["tokens_per_s_overall"] == pytest.approx(200_000 / 45) and t["startup_overhead_s"] == pytest.approx(25)
    c = dict(n_layer=8, n_head=8, d_model=512, d_inner=2048)
    assert tools.suggest_batch(c, 512, 512, 140 * 2**30) == 64  # an H200
    assert tools.suggest_batch(c, 512, 512, 20 * 2**30) == 16


# ----------------------------------------------------------------------------- the device image


def test_training_path_imports_and_trains_without_the_missing_modules(tmp_path, data):
    code = BLOCKER + textwrap.dedent(f"""
        import json
        import lakhnes.training, lakhnes.models, lakhnes.evaluation.perplexity
        from lakhnes.cli import main
        assert main(["train", "--config", "tiny", "--data", {str(data)!r}, "-o", {str(tmp_path / "run")!r},
                     "--steps", "2", "--eval-every", "2", "--eval-segments", "1", "--threads", "1"]) == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
        try:  # the hiding works: here, as on the device, MIDI cannot be read (no symusic)
            import lakhnes.formats.midi
            lakhnes.formats.midi.read_midi({str(tmp_path / "x.mid")!r})
            midi = "read"
        except ModuleNotFoundError as e:
            midi = str(e)
        print(json.dumps({{"hidden_loaded": loaded, "midi": midi}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"hidden_loaded": [],
                                                             "midi": "No module named 'symusic'"}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["step"] == 2


# ----------------------------------------------------------------------------- the dry run


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, data):
    """experiments/gpu/run.sh --dry-run, as on the device but tiny and on CPU, in an interpreter
    where the device image's missing modules are hidden (a sitecustomize on PYTHONPATH)."""
    tmp = tmp_path_factory.mktemp("gpu")
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "OUT": str(tmp / "out"), "WORK": str(tmp / "work"), "DATA": str(data),
           "PYTHONPATH": str(tmp / "site"), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(GPU / "run.sh"), "--dry-run"], capture_output=True, text=True, env=env,
                       timeout=300)
    return r, tmp / "out"


def test_dry_run_writes_what_the_gpu_run_brings_back(dry_run, data):
    r, out = dry_run
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    shards = [f for f in files if f.startswith("model/model-0")]
    n = len(shards)
    assert n >= 2 and shards == [f"model/model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    assert set(files) == {"log.txt", "metrics.json", "model/config.json", f"model/{INDEX_FILE}", *shards}
    assert len(files) <= 8 and all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    log = (out / "log.txt").read_text()
    assert "cuda_available: False" in log and "python" in log and "torch: " in log  # the check's printout
    assert "--schedule time --max-minutes" in log and "== training log:" in log and "step,epoch,lr" in log
    assert f"check-out: {len(files)} files" in r.stdout and "fits" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 6 and metrics["training"]["tokens"] == 6 * 2 * 16
    assert "tokens_per_s_overall" in metrics["training"]  # None when 6 tiny steps log 0.0 s (the log's 0.1 s)
    assert metrics["flops"]["train_flops_per_token"] > 0
    assert metrics["flops"]["peak_bf16_dense_flops"] == 989.5e12
    cfg = json.loads((out / "model" / "config.json").read_text())
    card = cfg["card"]
    assert cfg["weights"]["dtype"] == "float16" and card["stages"][0]["schedule"] == "time"
    assert card["stages"][0]["steps"] == 6 and card["parameters"] == metrics["model"]["parameters"]
    # the shards load (float32) and score the test split as the run's own evaluation did
    model = load_model(out / "model")
    assert model.emb.weight.dtype == torch.float32
    res = evaluate_lm(model, np.asarray(load_split(data, "test").tokens))
    for split in ("valid", "test"):
        assert math.isfinite(metrics["eval"][split]["ppl"]) and card["eval"][split] == metrics["eval"][split]
    assert res["ppl"] == pytest.approx(metrics["eval"]["test"]["ppl"], rel=1e-9)


def test_ship_copies_checks_and_names_it_large(dry_run, data, tmp_path, monkeypatch):
    _, out = dry_run
    to = tmp_path / "assets" / "large"
    info = ship.ship(out / "model", to, data)
    assert math.isfinite(info["valid_first_512_nll"])
    assert sorted(p.name for p in to.iterdir()) == sorted(
        ["README.md", *(p.name for p in (out / "model").iterdir())])
    assert "| NES-MDB test |" in (to / "README.md").read_text()
    monkeypatch.setattr(M, "shipped_model_path", lambda name: tmp_path / "assets" / name)
    monkeypatch.chdir(tmp_path)
    assert load_model("large").num_parameters() == info["parameters"]
    # a damaged folder is refused before anything is copied; the shipped one stays
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in (out / "model").iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    first = sorted(bad.glob("model-0*.safetensors"))[0]
    first.write_bytes(b"junk")
    with pytest.raises(InvalidInputError, match=first.name):
        ship.ship(bad, to, None)
    assert load_model("large").num_parameters() == info["parameters"]


def test_finish_ships_the_better_of_last_and_best(dry_run, tmp_path, monkeypatch):
    """When the in-training best checkpoint is not the last one, both are scored on the whole valid
    split and the better one is shipped."""
    _, out = dry_run
    run = out.parent / "work" / "nesmdb"
    ckpts = sorted((run / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_00000003", "step_00000006"]
    (run / "best.json").write_text(json.dumps({"path": f"checkpoints/{ckpts[0].name}", "step": 3}))
    monkeypatch.setattr(sys, "argv", ["tools.py", "finish", str(run), str(tmp_path / "out"), "--work", str(tmp_path),
                                      "--device", "cpu", "--shard-mib", "1"])
    assert tools.main() == 0
    card = json.loads((tmp_path / "out" / "model" / "config.json").read_text())["card"]
    ppl = card["selection"]["valid_ppl"]
    assert set(ppl) == {"step_00000003", "step_00000006"}
    assert card["checkpoint"] == f"nesmdb/{min(ppl, key=ppl.get)}"
    assert card["eval"]["valid"]["ppl"] == pytest.approx(min(ppl.values()), rel=1e-3)  # the same, in float16
