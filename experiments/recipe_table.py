"""Markdown table of the recipe arms (`experiments/recipe.sh`): budget, steps, tokens, speed and
whole-valid-split perplexity (LakhNES protocol), best first within each group.

    python experiments/recipe_table.py runs/recipe
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(work: Path) -> list[dict]:
    out = []
    for run in sorted((work / "runs").iterdir()):
        summary, ev = run / "summary.json", work / "eval" / f"{run.name}.valid.json"
        if not summary.exists():
            continue
        s = json.loads(summary.read_text())
        cfg = json.loads((run / "train_config.json").read_text())
        e = json.loads(ev.read_text()) if ev.exists() else {}
        m = cfg["model"]
        shape = f"{m['n_layer']}×{m['d_model']}, {m['n_head']} heads, ff {m['d_inner']}"
        extras = [f"dropout {m['dropout']}", f"mem {cfg.get('mem_len') or m['mem_len']}",
                  "pre-norm" if m.get("pre_norm") else "post-norm",
                  "tied" if m.get("tie_weights", True) else "untied",
                  ("aug, drop p " + str(cfg.get("augment_drop", 0.5))) if cfg["augment"] else "no aug",
                  "bf16" if cfg.get("bf16") else "fp32"]
        out.append({"arm": run.name, "group": "1/16 data" if run.name.startswith("sub-") else "full data",
                    "shape": shape, "setup": ", ".join(extras), "lr": cfg["lr"], "params": s["parameters"],
                    "minutes": s["elapsed_s"] / 60, "steps": s["step"], "tokens": s["tokens"],
                    "tok_s": s["tokens"] / max(s["elapsed_s"], 1e-9), "ppl": e.get("ppl"), "nll": e.get("nll")})
    return out


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/recipe")
    rs = rows(work)
    print("| group | arm | shape | setup | peak lr | params | train min | steps | tokens | tokens per CPU-s "
          "| valid PPL |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rs, key=lambda r: (r["group"], r["ppl"] if r["ppl"] is not None else 1e9)):
        ppl = f"**{r['ppl']:.3f}**" if r["ppl"] is not None else "—"
        print(f"| {r['group']} | {r['arm']} | {r['shape']} | {r['setup']} | {r['lr']:g} | {r['params']:,} "
              f"| {r['minutes']:.1f} | {r['steps']:,} | {r['tokens']:,} | {r['tok_s']:,.0f} | {ppl} |")


if __name__ == "__main__":
    main()
