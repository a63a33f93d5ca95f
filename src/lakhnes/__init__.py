"""lakhnes: write NES chiptunes with a Transformer-XL (LakhNES) and hear them as real NES audio.

The names below load when first used: ``import lakhnes`` (and so the ``lakhnes`` command, which
sets numpy's BLAS threads before numpy loads) imports nothing heavy."""

from lakhnes.errors import InvalidInputError

__version__ = "0.1.0"
__all__ = ["InvalidInputError", "NesScore", "load_model", "read_midi", "write_midi", "__version__"]

_LAZY = {"NesScore": "lakhnes.core.score", "read_midi": "lakhnes.formats.midi", "write_midi": "lakhnes.formats.midi",
         "load_model": "lakhnes.models"}


def __getattr__(name: str):
    """``lakhnes.NesScore``, ``lakhnes.read_midi`` ... imported when first used (``load_model``: torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lakhnes' has no attribute {name!r}")
