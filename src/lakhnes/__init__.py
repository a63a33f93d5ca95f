"""lakhnes: write NES chiptunes with a Transformer-XL (LakhNES) and hear them as real NES audio."""

from lakhnes.errors import InvalidInputError
from lakhnes.score import NesScore, read_midi, write_midi

__version__ = "0.1.0"
__all__ = ["InvalidInputError", "NesScore", "read_midi", "write_midi", "__version__"]
