"""Print the transfer experiment's table (markdown) from a work folder of ``transfer.sh``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARMS = [
    ("a", "NES-MDB only, no augmentation", ["a_nesmdb"], "a_nesmdb"),
    ("b", "NES-MDB, augmentation", ["b_nesmdb_aug"], "b_nesmdb_aug"),
    ("c", "Lakh stand-in (½) → NES-MDB, augmentation (½)", ["c_pretrain_lakh", "c_finetune"],
     "c_lakh_then_nesmdb_aug"),
]


def _read(p: Path) -> dict:
    return json.loads(p.read_text()) if p.exists() else {}


def _num(p: Path) -> float | None:
    return float(p.read_text()) if p.exists() else None


def main(work: str) -> None:
    w = Path(work)
    print("| arm | training | optimizer steps (batch 8 × 128 tokens) | train tokens | train wall (s) "
          "| NES-MDB test NLL (nats) | NES-MDB test PPL | eval wall (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for arm, what, runs, name in ARMS:
        sums = [_read(w / "runs" / r / "summary.json") for r in runs]
        steps = " + ".join(str(s.get("step", "?")) for s in sums)
        tokens = sum(s.get("tokens", 0) for s in sums)
        walls = [_num(w / "runs" / r / "wall_seconds") for r in runs]
        wall = " + ".join(f"{x:.0f}" if x is not None else "?" for x in walls)
        ev = _read(w / "eval" / f"{name}.json")
        ev_wall = _num(w / "eval" / f"{name}.seconds")
        nll = f"{ev['nll']:.4f}" if ev else "—"
        ppl = f"**{ev['ppl']:.3f}**" if ev else "—"
        print(f"| {arm} | {what} | {steps} | {tokens:,} | {wall} | {nll} | {ppl} | "
              f"{ev_wall:.0f} |" if ev_wall is not None else
              f"| {arm} | {what} | {steps} | {tokens:,} | {wall} | {nll} | {ppl} | — |")
    m = _read(w / "lakh" / "manifest.json")
    if m:
        print(f"\nLakh stand-in corpus: {m['files_read']} files read, {m['files_used']} used, "
              f"{m['examples']['train']} train / {m['examples']['valid']} valid examples, "
              f"{m['splits']['train']['tokens']:,} train tokens.")
    total = _num(w / "logs" / "total.seconds")
    if total is not None:
        print(f"Total wall time (training + evaluation, two jobs at a time): {total / 60:.1f} min.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/transfer")
