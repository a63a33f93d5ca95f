"""For tests that run lakhnes in a child Python: one-thread BLAS and a preamble that hides a module."""

from __future__ import annotations

import os

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def hide_module(name: str, top_level: bool = False) -> str:
    """Python source that makes importing ``name`` (with ``top_level``: any module of its package)
    raise ModuleNotFoundError, as in an environment without it (a ``None`` in sys.modules would
    break scipy, which looks torch up there)."""
    test = f"name.split('.')[0] == {name!r}" if top_level else f"name == {name!r}"
    return ("import importlib.abc, sys\n"
            "class Hidden(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if {test}:\n"
            f"            raise ModuleNotFoundError(\"No module named {name!r}\", name=name)\n"
            "sys.meta_path.insert(0, Hidden())\n")
