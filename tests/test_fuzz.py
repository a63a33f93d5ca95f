"""A seeded fuzz run: a few hundred mutations of the real fixture files through ``encode``, ``decode``,
``synth``, ``generate --prime``, ``prepare lakh`` and ``generate`` with options drawn from their valid
and hostile ranges (``--map``, ``--from``/``--to``, inf/nan/1e308 values, huge seeds, bogus devices;
see ``tests/fuzzing.py``; the 10,000-input run
is ``benchmarks/fuzz.py``). Every case must end with exit status 0, 1 or 2, no traceback and no stray
RuntimeWarning, one ``path: reason`` line per failure, no empty output counted as converted, nothing
half-written, within its time limit and with peak memory growing by at most ``MAX_PEAK_MB``."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fuzzing import MAX_PEAK_MB, TARGETS, make_cases, run_case, seed_files

CASES = 300
SEED = 14


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    import torch

    from lakhnes.models import build_model, save_model

    torch.manual_seed(0)
    return str(save_model(build_model("transformer_xl", "tiny"), tmp_path_factory.mktemp("tiny")))


def test_fuzzed_real_files_fail_cleanly(fixtures, tmp_path, tiny_model, one_torch_thread):
    cases = make_cases(seed_files(fixtures), CASES, SEED)
    outcomes = [run_case(c, tmp_path / "work", tiny_model, timeout=60) for c in cases]
    bad = [o for o in outcomes if not o.ok]
    assert not bad, "\n".join(o.to_json() for o in bad[:10])
    rcs = Counter((o.target, o.rc) for o in outcomes)
    for t in TARGETS:  # the run reached every command, and both its success and its failure paths
        assert rcs[(t, 0)] >= 3 and rcs[(t, 1)] + rcs[(t, 2)] >= 3, rcs
    assert max(o.peak_mb for o in outcomes) <= MAX_PEAK_MB
    assert sum(o.converted for o in outcomes if o.target == "encode") == rcs[("encode", 0)]


def test_fuzzed_vgm_gives_invalid_input_error_only(fixtures):
    """Corrupt, truncated and garbage VGM (from songs written by lakhnes and a real NES-MDB rip's
    layout): the reader answers a one-line ``InvalidInputError`` naming the file, or a valid score."""
    import random

    from lakhnes.errors import InvalidInputError
    from lakhnes.formats.apu_driver import register_writes
    from lakhnes.formats.midi import read_midi
    from lakhnes.formats.vgm import read_vgm, vgm_bytes
    from tests.fuzzing import mutate_vgm

    seeds = []
    for p in sorted((fixtures / "nesmdb").glob("*.mid"))[:4]:
        writes, n = register_writes(read_midi(p))
        seeds.append(vgm_bytes(writes, n, p.stem))
    rng = random.Random(SEED)
    ok = bad = 0
    for _ in range(400):
        data = mutate_vgm(rng.choice(seeds), rng)
        try:
            score = read_vgm(data, name="fuzz")
        except InvalidInputError as e:
            assert "\n" not in str(e)
            bad += 1
        else:
            score.check()
            ok += 1
    assert ok >= 10 and bad >= 10, (ok, bad)
