"""Shared fixtures: committed NES-MDB files, and the full data in ../shared/data when present."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def nesmdb_fixture_files() -> list[Path]:
    return sorted((FIXTURES / "nesmdb").glob("*.mid"))


def _need(name: str) -> Path:
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"needs ../shared/data/{name} (full data not present)")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("needs ../shared/data (full data not present)")
    return SHARED


@pytest.fixture(scope="session")
def nesmdb_midi_dir(tmp_path_factory) -> Path:
    """The full NES-MDB MIDI (official split), extracted once per test session."""
    tar = _need("nesmdb_midi.tar.gz")
    out = tmp_path_factory.mktemp("nesmdb")
    with tarfile.open(tar) as t:
        t.extractall(out, filter="data")
    return out / "nesmdb_midi"


@pytest.fixture(scope="session")
def tx1_reference_dir(tmp_path_factory) -> Path:
    """LakhNES' published TX1 files for the valid split (``valid/*.tx1.txt``, ``tx1_vocab.txt``)."""
    tar = _need("nesmdb_tx1_valid_reference.tar.gz")
    out = tmp_path_factory.mktemp("tx1ref")
    with tarfile.open(tar) as t:
        t.extractall(out, filter="data")
    return out


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: small ops gain nothing from two, and lose a lot on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
