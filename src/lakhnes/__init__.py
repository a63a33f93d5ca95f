"""lakhnes: write NES chiptunes with a Transformer-XL (LakhNES) and hear them as real NES audio."""

from lakhnes.core.score import NesScore
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi, write_midi

__version__ = "0.1.0"
__all__ = ["InvalidInputError", "NesScore", "load_model", "read_midi", "write_midi", "__version__"]


def __getattr__(name: str):
    """``lakhnes.load_model`` without importing torch until it is used."""
    if name == "load_model":
        from lakhnes.models import load_model

        return load_model
    raise AttributeError(f"module 'lakhnes' has no attribute {name!r}")
