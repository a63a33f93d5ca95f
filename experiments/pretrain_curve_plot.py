"""Table and plot of `experiments/pretrain_curve.sh`: NES-MDB test perplexity after the same
fine-tuning, against the amount of pre-training on the Lakh stand-in (the paper's Figure 3).

    python experiments/pretrain_curve_plot.py runs/pretrain_curve --unit 1000 --ft-steps 2000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("--unit", type=int, required=True, help="pre-training steps per unit")
    ap.add_argument("--ft-steps", type=int, required=True)
    ap.add_argument("--plot", default="docs/pretrain_curve.png")
    args = ap.parse_args()
    work = Path(args.work)
    pts = []
    for f in sorted(work.glob("eval/ft_*.test.json")):
        units = int(f.name.split(".")[0].split("_")[1])
        r = json.loads(f.read_text())
        pre = work / "runs" / "pretrain" / "summary.json"
        tok_per_step = json.loads(pre.read_text())["tokens"] / max(1, json.loads(pre.read_text())["step"]) \
            if pre.exists() else 1024
        pts.append((units, r["ppl"], r["nll"], int(units * args.unit * tok_per_step)))
    pts.sort()
    print(f"| pre-training (units of {args.unit} steps) | pre-training tokens | fine-tuning | test NLL | test PPL |")
    print("|---|---|---|---|---|")
    for u, ppl, nll, tok in pts:
        print(f"| {u} | {tok:,} | {args.ft_steps:,} steps on NES-MDB | {nll:.4f} | **{ppl:.3f}** |")
    if not pts:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="#c0392b")
    for u, ppl, *_ in pts:
        ax.annotate(f"{ppl:.2f}", (u, ppl), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xticks([p[0] for p in pts])
    ax.set_xlabel(f"pre-training on the Lakh stand-in (units of {args.unit} steps)")
    ax.set_ylabel("NES-MDB test perplexity")
    ax.set_title(f"Same fine-tuning ({args.ft_steps:,} steps), more pre-training", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(args.plot)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp)
    tmp.replace(out)


if __name__ == "__main__":
    main()
