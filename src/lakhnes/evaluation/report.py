"""Gather ``lakhnes eval`` results into the paper-shaped table: model, parameters, epochs,
valid PPL, test PPL (Markdown + JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lakhnes.errors import InvalidInputError


def find_results(paths) -> tuple[list[dict], list[str]]:
    """Result dicts from JSON files and folders (searched recursively); and the files that are
    unreadable. JSON files that are not eval results are passed over."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise InvalidInputError("no such file or folder", str(p))
    found, bad = [], []
    for f in sorted(set(files), key=lambda f: (f.stat().st_mtime, str(f))):
        try:
            d = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            bad.append(f"{f}: not JSON ({e})")
            continue
        if isinstance(d, dict) and {"ppl", "split", "targets"} <= d.keys():
            found.append({**d, "_file": str(f)})
    return found, bad


def table_rows(results: list[dict]) -> list[dict]:
    """One row per model name (worst test PPL first, untested last); a later result for the same
    model and split replaces an earlier one."""
    rows: dict[str, dict] = {}
    for r in results:
        name = r.get("name") or r.get("model")
        row = rows.setdefault(name, {"model": name})
        for k in ("model_type", "parameters", "epochs", "step", "augment", "smoothing"):
            if r.get(k) is not None:
                row[k] = r[k]
        row[f"{r['split']}_ppl"] = r["ppl"]
        row[f"{r['split']}_targets"] = r["targets"]
    return sorted(rows.values(), key=lambda r: ("test_ppl" not in r, -r.get("test_ppl", 0.0), r["model"]))


def _params(r: dict) -> str:
    n = r.get("parameters")
    if n is None:
        return "—"
    unit = " n-grams" if r.get("smoothing") else ""
    if n >= 1e6:
        return f"{n / 1e6:.1f} M{unit}"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k{unit}"
    return f"{n}{unit}"


def _fmt(x, digits=2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    lines = ["| model | type | parameters | epochs | valid PPL | test PPL |", "|---|---|---|---|---|---|"]
    for r in rows:
        kind = r.get("model_type", "")
        if r.get("smoothing"):
            kind += f" ({r['smoothing']})"
        elif "augment" in r:
            kind += ", augmented" if r["augment"] else ", no augmentation"
        if r.get("step") is not None:
            kind += f", step {r['step']}"
        epochs = "1 (counts)" if r.get("smoothing") else _fmt(r.get("epochs"), 3)
        lines.append(f"| {r['model']} | {kind} | {_params(r)} | {epochs} | "
                     f"{_fmt(r.get('valid_ppl'))} | {_fmt(r.get('test_ppl'))} |")
    return "\n".join(lines) + "\n"


def write_report(results: list[dict], md_path: str | os.PathLike, json_path: str | os.PathLike | None) -> list[dict]:
    from lakhnes.io import write_text_atomic

    rows = table_rows(results)
    note = ("\nPPL: exp of the mean negative log-likelihood per token over the whole split (10 streams, "
            "segments of 128, Transformer-XL memory 896; every token but the first of each stream "
            "scored once). Epochs: training tokens seen / train-split tokens.\n")
    write_text_atomic(md_path, markdown(rows) + note)
    if json_path:
        write_text_atomic(json_path, json.dumps(rows, indent=2) + "\n")
    return rows
