"""Draw docs/architecture.png from the code itself: the layers of tests/test_layout.py, one box per
unit (package or top-level module) with its size in lines, and an arrow for every unit that imports
another.

Usage: python docs/architecture_picture.py [-o docs/architecture.png]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("test_layout", ROOT / "tests" / "test_layout.py")
L = importlib.util.module_from_spec(spec)
spec.loader.exec_module(L)

NAMES = ["shared utilities", "the song and its tokens", "files and sound", "data and networks",
         "decoding and measuring", "training and making music", "web apps", "command line"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "architecture.png"))
    a = ap.parse_args()
    lines: dict[str, int] = {}
    for path in L.SRC.rglob("*.py"):
        lines[L.unit_of(path)] = lines.get(L.unit_of(path), 0) + len(path.read_text().splitlines())
    edges = {(u, t) for _, u, t in L.unit_imports() if u in lines and t in lines and u != t}
    layers = [[u for u in sorted(units) if u in lines and u not in ("__main__", "__init__")] for units in L.LAYERS]
    fig, ax = plt.subplots(figsize=(12, 8.5))
    pos = {}
    for k, units in enumerate(layers):
        y = k * 1.0
        ax.text(-0.3, y, NAMES[k], ha="right", va="center", fontsize=9, color="#555")
        for i, u in enumerate(units):
            x = (i + 0.5) * 10 / max(len(units), 1)
            pos[u] = (x, y)
            is_pkg = (L.SRC / u).is_dir()
            ax.add_patch(FancyBboxPatch((x - 0.9, y - 0.22), 1.8, 0.44, boxstyle="round,pad=0.02",
                                        fc="#dbe9f6" if is_pkg else "#f3f3f3", ec="#34608d" if is_pkg else "#999"))
            ax.text(x, y + 0.05, u + ("/" if is_pkg else ".py"), ha="center", va="center", fontsize=10,
                    weight="bold" if is_pkg else "normal")
            ax.text(x, y - 0.12, f"{lines[u]:,} lines", ha="center", va="center", fontsize=7, color="#555")
    for u, t in sorted(edges):
        if u in pos and t in pos and pos[u][1] != pos[t][1] and t not in L.LAYERS[0]:  # all may use layer 0
            ax.add_patch(FancyArrowPatch((pos[u][0], pos[u][1] - 0.22), (pos[t][0], pos[t][1] + 0.22),
                                         arrowstyle="-|>", mutation_scale=8, lw=0.6, color="#888", alpha=0.6,
                                         connectionstyle="arc3,rad=0.05"))
    ax.set_xlim(-3.2, 10.2)
    ax.set_ylim(-0.6, len(layers) - 0.4)
    ax.axis("off")
    ax.set_title("lakhnes: layers (bottom up) and who imports whom (arrows point at what is imported;\n"
                 "every layer may use the shared utilities)")
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print(a.output)


if __name__ == "__main__":
    main()
