"""A tiny real listening study for the tests: the committed NES-MDB fixtures as the real songs, their
TX1 twins as one system, the first three MIDI fixtures as another; short clips, a few per pool."""

from __future__ import annotations

import shutil
from pathlib import Path

from lakhnes.listen.study import Settings, SystemSpec, setup_study

FIXTURES = Path(__file__).parent / "fixtures"
#: distinctive names, to look for in what the page receives
SYSTEMS = ("zebrafish", "quokka")


def make_study(out: Path, **settings):
    """Set a study up at ``out`` (clips of 0.3 s and 0.5 s, 3 per pool unless overridden)."""
    two = out.parent / f"{out.name}-songs"
    two.mkdir(parents=True, exist_ok=True)
    for f in sorted((FIXTURES / "nesmdb").glob("*.mid"))[1:4]:
        shutil.copy(f, two / f.name)
    opts = {"turing_seconds": 0.3, "preference_seconds": 0.5, "clips": 3} | settings
    systems = [SystemSpec(SYSTEMS[0], folder=FIXTURES / "tx1"), SystemSpec(SYSTEMS[1], folder=two)]
    return setup_study(out, FIXTURES / "nesmdb", systems, Settings(**opts))
