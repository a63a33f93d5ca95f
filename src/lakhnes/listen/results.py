"""A study's results, recomputed from its answer rows each time.

Who counts (per test):

- **Turing test**: a listener whose every control answer is right (the real clip named human over
  the random one) and who finished at least ``turing_min_batches`` batches (the paper: 100 % over
  at least 3 batches);
- **preference test**: a listener who never preferred the random clip in a control pair and
  finished at least ``preference_min_batches`` batches.

Counted answers: the non-control answers of a qualified listener's finished batches.

Per system: Turing test: accuracy, the share of its pairs in which the listener named the real
clip human (lower = more human-like; 0.5 = indistinguishable); preference test: the share of
the comparisons it was in that it won. Standard error of a share p over n answers:
sqrt(p (1 - p) / n). Differences: for every two systems, z = (p1 - p2) / sqrt(se1² + se2²),
two-sided p-value from the normal distribution (the paper's t-test with normal approximation);
Turing accuracies are also tested against chance (z = (p - 0.5) / sqrt(0.25 / n)).
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations

from lakhnes.listen.study import RANDOM, REAL, TESTS, Settings

ALPHA = 0.05


def share(k: int, n: int) -> dict:
    """``k`` of ``n``: the share ``p`` and its standard error ``se`` (None when n = 0)."""
    if n == 0:
        return {"k": 0, "n": 0, "p": None, "se": None}
    p = k / n
    return {"k": k, "n": n, "p": p, "se": math.sqrt(p * (1 - p) / n)}


def z_test(p1: float, se1: float, p2: float, se2: float) -> tuple[float, float]:
    """z and the two-sided p-value of the difference of two shares (normal approximation)."""
    s = math.sqrt(se1 * se1 + se2 * se2)
    if s == 0:
        return (0.0, 1.0) if p1 == p2 else (math.copysign(math.inf, p1 - p2), 0.0)
    z = (p1 - p2) / s
    return z, math.erfc(abs(z) / math.sqrt(2))


def qualify(rows: list[dict], test: str, settings: Settings) -> dict[str, dict]:
    """listener → ``finished`` batches, ``controls`` answered, ``failed`` controls, ``qualified``."""
    by_batch: dict[tuple[str, str], int] = defaultdict(int)
    out: dict[str, dict] = {}
    for r in rows:
        who = out.setdefault(r["listener"], {"finished": 0, "controls": 0, "failed": 0})
        by_batch[r["listener"], r["batch"]] += 1
        if r["control"]:
            who["controls"] += 1
            wrong = r["correct"] == 0 if test == "turing" else r["chosen_system"] == RANDOM
            who["failed"] += int(wrong)
    for (listener, _), n in by_batch.items():
        out[listener]["finished"] += int(n >= settings.pairs)
    need = settings.min_batches(test)
    for who in out.values():
        who["qualified"] = who["failed"] == 0 and who["finished"] >= need
    return out


def analyse_test(rows: list[dict], test: str, settings: Settings, systems: list[str]) -> dict:
    """One test's results from its answer rows (see the module's docstring). ``systems``: the
    systems to report, in order."""
    rows = [r for r in rows if r["test"] == test]
    listeners = qualify(rows, test, settings)
    sizes: dict[str, int] = defaultdict(int)
    for r in rows:
        sizes[r["batch"]] += 1
    counted = [r for r in rows if not r["control"] and listeners[r["listener"]]["qualified"]
               and sizes[r["batch"]] >= settings.pairs]
    per = {}
    for s in systems:
        mine = [r for r in counted if s in (r["system_a"], r["system_b"])]
        k = sum(r["correct"] == 1 for r in mine) if test == "turing" else sum(r["chosen_system"] == s for r in mine)
        per[s] = share(k, len(mine))
        if test == "turing" and mine:
            z = (per[s]["p"] - 0.5) / math.sqrt(0.25 / len(mine))
            per[s]["vs_chance"] = {"z": z, "p_value": math.erfc(abs(z) / math.sqrt(2))}
    pairs = []
    for a, b in combinations([s for s in systems if per[s]["n"]], 2):
        z, pv = z_test(per[a]["p"], per[a]["se"], per[b]["p"], per[b]["se"])
        pairs.append({"a": a, "b": b, "diff": per[a]["p"] - per[b]["p"], "z": z if math.isfinite(z) else None,
                      "p_value": pv, "significant": pv < ALPHA})
    failed = sum(w["failed"] > 0 for w in listeners.values())
    return {
        "test": test, **TESTS[test], "min_batches": settings.min_batches(test),
        "listeners": len(listeners), "qualified": sum(w["qualified"] for w in listeners.values()),
        "failed_controls": failed,
        "too_few_batches": sum(w["failed"] == 0 and not w["qualified"] for w in listeners.values()),
        "answers": len(rows), "counted": len(counted), "counted_ids": sorted(r["id"] for r in counted),
        "systems": per, "differences": pairs,
    }


def analyse(rows: list[dict], settings: Settings, compared: dict[str, list[str]]) -> dict:
    """Every test's results: test → :func:`analyse_test` (``compared``: test → its systems)."""
    return {t: analyse_test(rows, t, settings, compared[t]) for t in settings.tests}


def _pfmt(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def markdown(results: dict) -> str:
    """The results as Markdown tables (one section per test)."""
    out = []
    for t, r in results.items():
        out.append(f"### {r['label']}: {r['measure']}\n")
        out.append(f"Listeners: {r['listeners']} ({r['qualified']} counted; {r['failed_controls']} failed a "
                   f"control; {r['too_few_batches']} finished fewer than {r['min_batches']} batches). "
                   f"Answers: {r['answers']}, counted: {r['counted']}.\n")
        if t == "turing":
            out += ["| system | answers | accuracy ± s.e. | vs chance (p) |", "|---|---|---|---|"]
        else:
            out += ["| system | answers | share won ± s.e. |", "|---|---|---|"]
        for s, v in r["systems"].items():
            cells = [s, str(v["n"]), "—" if v["p"] is None else f"{v['p']:.3f} ± {v['se']:.3f}"]
            if t == "turing":
                cells.append(_pfmt(v["vs_chance"]["p_value"]) if "vs_chance" in v else "—")
            out.append("| " + " | ".join(cells) + " |")
        if r["differences"]:
            out += ["", "| systems | difference | z | p | p < 0.05 |", "|---|---|---|---|---|"]
            for d in r["differences"]:
                z = "—" if d["z"] is None else f"{d['z']:+.2f}"
                out.append(f"| {d['a']} vs {d['b']} | {d['diff']:+.3f} | {z} | {_pfmt(d['p_value'])} | "
                           f"{'yes' if d['significant'] else 'no'} |")
        out.append("")
    return "\n".join(out)


def figure_png(results: dict) -> bytes:
    """The paper's two figures' shape: per test, a bar per system with standard-error whiskers
    (Turing: a dashed line at chance). PNG bytes."""
    import io

    from matplotlib.figure import Figure

    tests = list(results)
    fig = Figure(figsize=(5.2 * len(tests), 4.2), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(tests), squeeze=False)[0]
    colours = {REAL: "#42a58c"}
    palette = ["#e0556b", "#e8a33c", "#7b68d8", "#3c8fd6", "#8d8d8d", "#c45bb0"]
    for ax, t in zip(axes, tests, strict=True):
        r = results[t]
        names = list(r["systems"])
        vals = [r["systems"][s]["p"] for s in names]
        errs = [r["systems"][s]["se"] or 0.0 for s in names]
        x = range(len(names))
        cols = [colours.get(s, palette[i % len(palette)]) for i, s in enumerate(names)]
        ax.bar(x, [v or 0.0 for v in vals], yerr=errs, color=cols, capsize=5, edgecolor="#222", linewidth=0.6,
               width=0.6)
        pad = max(0.7, (3 - len(names)) / 2 + 0.5)  # one or two bars stay narrow and centred
        ax.set_xlim(-pad, len(names) - 1 + pad)
        for i, (v, s) in enumerate(zip(vals, names, strict=True)):
            n = r["systems"][s]["n"]
            ax.text(i, 0.02, f"n={n}" if v is not None else "no answers", ha="center", va="bottom", fontsize=8,
                    color="white" if v else "#444", rotation=90 if v is None else 0)
        if t == "turing":
            ax.axhline(0.5, ls="--", color="#666", lw=1)
            ax.text(-pad + 0.05, 0.51, "chance", ha="left", va="bottom", fontsize=8, color="#666")
        ax.set_xticks(list(x), names, rotation=20 if len(names) > 4 else 0)
        ax.set_ylim(0, 1)
        who = f"{r['qualified']} listener{'s' * (r['qualified'] != 1)}, {r['counted']} answers"
        ax.set_title(f"{r['label']} ({who})", fontsize=11)
        ax.set_ylabel(r["measure"], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
