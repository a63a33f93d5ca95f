"""Ship a trained checkpoint as a packaged model (``src/lakhnes/assets/default`` or ``large``) and
write its model card, or only re-write the card.

The packaged ``config.json`` keeps the model config plus a ``card`` record: the training stages
(command, data, steps, tokens, seconds, hardware; appended to the init model's stages), the
whole-split perplexities (LakhNES protocol) and optional song statistics. ``README.md`` beside the
weights is written from that record.

    python experiments/ship_model.py runs/long/nesmdb --stage "lakhnes train ..." \\
        --valid runs/long/eval/valid.json --test runs/long/eval/test.json --to src/lakhnes/assets/default
    python experiments/ship_model.py --card-only src/lakhnes/assets/default --songs-md results/songs.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lakhnes.io import write_text_atomic
from lakhnes.models import CONFIG_FILE, WEIGHTS_FILE, resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def this_machine() -> str:
    """The machine a stage trained on, as the card's hardware column reads: cores, CPU, vector unit, torch."""
    import os

    import torch

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    simd = ("AVX-512 with bf16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags
            else "AVX2" if "avx2" in flags else "")
    cpu = ", ".join(x for x in (name, simd) if x)
    return f"{os.cpu_count()}-core CPU{f' ({cpu})' if cpu else ''}, torch {torch.__version__.split('+')[0]}"


def _rel(path) -> str | None:
    """A path inside the repository, relative to its root (as the stage commands are written)."""
    if path is None:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _at_step(run: Path, step: int) -> tuple[int, float] | None:
    """(tokens, elapsed seconds) of ``run`` at ``step``, from its log.csv."""
    import csv

    log = run / "log.csv"
    if not log.exists():
        return None
    for row in csv.DictReader(log.open()):
        if int(row["step"]) == step and row.get("tokens"):
            return int(row["tokens"]), float(row["elapsed_s"])
    return None


def stage_record(run: Path, command: str, hardware: str, ckpt: Path | None = None) -> dict:
    """One training stage from a run folder's train_config.json and summary.json; when the shipped
    checkpoint ``ckpt`` lies in this run, its steps, tokens and seconds are the checkpoint's."""
    cfg = json.loads((run / "train_config.json").read_text())
    summ = json.loads((run / "summary.json").read_text())
    steps, tokens, seconds = summ["step"], summ["tokens"], summ["elapsed_s"]
    if ckpt is not None and ckpt.resolve().parent.parent == run.resolve():
        step = int(ckpt.name.rsplit("_", 1)[-1])  # checkpoints/step_NNNNNNNN
        at = _at_step(run, step)
        if at is not None:
            steps, (tokens, seconds) = step, at
    return {"command": command, "data": _rel(cfg["data"]), "init": _rel(cfg.get("init")), "steps": steps,
            "tokens": tokens, "seconds": seconds, "clock": cfg.get("clock", "wall"),
            "threads": cfg.get("threads") or None, "augment": cfg["augment"],
            "augment_drop": cfg.get("augment_drop", 0.5) if cfg["augment"] else None,
            "augment_swap": cfg.get("augment_swap", 0.5) if cfg["augment"] else None, "lr": cfg["lr"],
            "batch": cfg["batch_size"], "tgt_len": cfg.get("tgt_len") or cfg["model"].get("tgt_len"),
            "mem_len": cfg.get("mem_len") or cfg["model"].get("mem_len"),
            "augment_speed": cfg.get("augment_speed", "free") if cfg["augment"] else None, "hardware": hardware}


def round_matrices(src: Path, dst: Path) -> None:
    """Copy safetensors ``src`` to ``dst`` with every weight matrix (2-D ``*.weight``) rounded to
    float16 values, still float32: the weights the compiled decoding step (``txl_kernel``) takes."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(src), "np") as f:
        meta = f.metadata()
        w = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in w.items():
        if k.endswith(".weight") and v.ndim == 2 and v.dtype == np.float32:
            w[k] = v.astype(np.float16).astype(np.float32)
    save_file(w, str(dst), metadata=meta)


def ship(ckpt: Path, to: Path, card: dict) -> None:
    """Copy weights + config into ``to`` (each file under a temporary name, then renamed)."""
    to.mkdir(parents=True, exist_ok=True)
    meta = json.loads((ckpt / CONFIG_FILE).read_text())
    meta = {"model_type": meta["model_type"], "config": meta["config"], "card": card}
    tmp = to / f".{WEIGHTS_FILE}.tmp"
    if meta["model_type"] == "transformer_xl":  # the compiled decoding step runs on float16 weight values
        round_matrices(ckpt / WEIGHTS_FILE, tmp)
    else:
        shutil.copyfile(ckpt / WEIGHTS_FILE, tmp)
    tmp.replace(to / WEIGHTS_FILE)
    write_text_atomic(to / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")


def _ppl(card: dict, split: str) -> str:
    e = card.get("eval", {}).get(split)
    return f"{e['ppl']:.3f}" if e else "not measured"


def card_markdown(meta: dict, name: str) -> str:
    c, card = meta["config"], meta.get("card", {})
    stages = card.get("stages", [])
    n_params = card.get("parameters")
    tot_tok = sum(s["tokens"] for s in stages)
    tot_steps = sum(s["steps"] for s in stages)
    # stages recorded before per-stage times were kept carry seconds None; their sum is "unsplit_seconds"
    tot_h = (sum(s["seconds"] or 0 for s in stages) + card.get("unsplit_seconds", 0)) / 3600
    lines = [
        "---",
        "license: mit",
        "library_name: lakhnes",
        "tags: [music-generation, chiptune, nes, transformer-xl, lakhnes]",
        "datasets: [nes-mdb" + (", lakh-midi-stand-in" if any("lakh" in s["data"] for s in stages) else "") + "]",
        "metrics: [perplexity]",
        "---",
        "",
        f"# {name}: Transformer-XL over NES-MDB TX1 events",
        "",
        "The model behind `lakhnes generate` and the studio. It predicts the next TX1 event (631 token types:",
        "waits, and note-on / note-off for the pulse 1, pulse 2, triangle and noise voices of the NES) and is",
        "sampled with temperature 0.95 (the waits 0.7, within their 0.8 nucleus, at the network's tempo), top-k 32 and",
        "its song, voice and rhythm caches, under lakhnes' decoding rules.",
        "",
        "## Model details",
        "",
        f"- Architecture: Transformer-XL (relative positions, segment recurrence), {c['n_layer']} layers, "
        f"d_model {c['d_model']}, {c['n_head']} heads of {c['d_head']}, feed-forward {c['d_inner']}, "
        f"{'pre' if c.get('pre_norm') else 'post'}-norm, {'tied' if c.get('tie_weights', True) else 'untied'} "
        f"input/output embeddings, dropout {c['dropout']}.",
        f"- Parameters: {n_params:,}." if n_params else "- Parameters: see config.json.",
        f"- The last stages trained on segments of {c['tgt_len']} tokens with a memory of {c['mem_len']}; "
        f"generation uses that memory ({c['mem_len']} tokens), evaluation the LakhNES protocol's 896.",
        "- Files: `model.safetensors` (float32) + `config.json`; loads without pickle "
        "(`lakhnes.models.load_model`).",
        "",
        "## Training data",
        "",
        "- NES-MDB (Donahue, Mao, McAuley, ISMIR 2018), official train split: 4,497 songs, 8,394,007 TX1",
        "  tokens (`lakhnes prepare nesmdb`). The valid split picks checkpoints; the test split is only scored.",
    ]
    if any("lakh" in s["data"] for s in stages):
        lines += ["- Pre-training: a stand-in for the Lakh MIDI Dataset, 2,654 multi-instrument MIDI files (545 genuine",
                  "  Lakh MIDI files, POP909, JS fakes) mapped onto the four NES voices as LakhNES does",
                  "  (`lakhnes prepare lakh`)."]
    lines += ["- On-the-fly augmentation as LakhNES (transpose -6..+5, speed ±5 %, voice swap, voice dropping), at",
              "  the rates each stage lists; from the long-memory stages on, the speed change scales whole 60 Hz",
              "  frames and keeps each time's offset from the frame grid (`--aug-speed grid`); stages marked \"no speed",
              "  change\" train without it (`--aug-speed off`).", "", "## Training procedure", "",
              "| # | command | data | steps | tokens | hours | clock | augmentation | peak lr | hardware |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for i, s in enumerate(stages, 1):
        speed = {"off": ", no speed change", "free": ", speed free"}.get(s.get("augment_speed"), "")
        aug = (f"on, voice drop p {s['augment_drop']}, swap p {s.get('augment_swap', 0.5)}{speed}" if s.get("augment")
               else "off")
        hours = f"{s['seconds'] / 3600:.2f}" if s.get("seconds") else "—"
        lines.append(f"| {i} | `{s['command']}` | `{s['data']}` | {s['steps']:,} | {s['tokens']:,} | "
                     f"{hours} | {s.get('clock', 'wall')} | {aug} | {s['lr']:g} | {s['hardware']} |")
    if card.get("notes"):
        lines += [""] + [f"- {note}" for note in card["notes"]]
    lines += ["", f"Cumulative: **{tot_steps:,} steps, {tot_tok:,} tokens ({tot_tok / 8_394_007:.2f} NES-MDB "
              f"epochs' worth), {tot_h:.2f} hours of training** (evaluations not counted).", "",
              "## Evaluation", "",
              "Perplexity with the LakhNES protocol (`lakhnes eval MODEL --data data/nesmdb --split valid|test`:",
              "each split's songs concatenated, 10 parallel streams, segments of 128, memory 896, every token but",
              "each stream's first scored once):", "",
              "| split | PPL |", "|---|---|",
              f"| NES-MDB valid | {_ppl(card, 'valid')} |", f"| NES-MDB test | **{_ppl(card, 'test')}** |", ""]
    ev = card.get("eval", {})
    if ev.get("test_song_cache") and ev["test_song_cache"].get("ppl_voice_cache"):
        sc = {(split, k): f"{ev[split + '_song_cache'][k]:.3f}" for split in ("valid", "test")
              for k in ("ppl_song_cache", "ppl_voice_cache")}
        lines[-1:] = [f"| NES-MDB valid, with the song cache (fitted there) | {sc['valid', 'ppl_song_cache']} |",
                      f"| NES-MDB test, with the song cache | {sc['test', 'ppl_song_cache']} |",
                      f"| NES-MDB valid, with the song and voice caches (fitted there) | {sc['valid', 'ppl_voice_cache']} |",
                      f"| NES-MDB test, with the song and voice caches | {sc['test', 'ppl_voice_cache']} |",
                      f"| NES-MDB valid, with the three caches (fitted there) | {_ppl(card, 'valid_song_cache')} |",
                      f"| NES-MDB test, with the three caches | **{_ppl(card, 'test_song_cache')}** |", ""]
        lines += ["The song cache (`lakhnes.models.song_cache`, kept in `config.json`) mixes the network's prediction",
                  "with what the song itself did after the same recent tokens (up to 256 of them); the voice cache",
                  "(`lakhnes.models.voice_cache`) then moves each melodic voice's note-on probability toward where",
                  "this song's melodies went after the same last 1-16 pitch intervals (in any voice, in any key); the",
                  "rhythm cache (`lakhnes.models.rhythm_cache`) is the song cache over the song's rhythm (melodic",
                  "pitches taken away), so a rhythm, a drum pattern or a tempo comes back under new notes. Each has",
                  "a weight per kind of match fitted on the valid split (`lakhnes eval MODEL --split valid",
                  "--fit-song-cache`). Generation uses them by default (`--no-rhythm-cache`, `--no-voice-cache`: without",
                  "that one; `--no-song-cache`: the network alone, the first two rows).", ""]
    elif ev.get("test_song_cache") and ev["test_song_cache"].get("ppl_song_cache"):
        sc = {split: f"{ev[split + '_song_cache']['ppl_song_cache']:.3f}" for split in ("valid", "test")}
        lines[-1:] = [f"| NES-MDB valid, with the song cache (fitted there) | {sc['valid']} |",
                      f"| NES-MDB test, with the song cache | {sc['test']} |",
                      f"| NES-MDB valid, with the song and voice caches (fitted there) | {_ppl(card, 'valid_song_cache')} |",
                      f"| NES-MDB test, with the song and voice caches | **{_ppl(card, 'test_song_cache')}** |", ""]
        lines += ["The song cache (`lakhnes.models.song_cache`, kept in `config.json`) mixes the network's prediction",
                  "with what the song itself did after the same recent tokens (up to 256 of them); the voice cache",
                  "(`lakhnes.models.voice_cache`) then moves each melodic voice's note-on probability toward where",
                  "this song's melodies went after the same last 1-16 pitch intervals (in any voice, in any key).",
                  "Both have a weight per kind of match fitted on the valid split (`lakhnes eval MODEL --split valid",
                  "--fit-song-cache`). Generation uses them by default (`--no-voice-cache`: the song cache alone;",
                  "`--no-song-cache`: the network alone, the first two rows).", ""]
    elif ev.get("test_song_cache"):
        lines[-1:] = [f"| NES-MDB valid, with the song cache (fitted there) | {_ppl(card, 'valid_song_cache')} |",
                      f"| NES-MDB test, with the song cache | **{_ppl(card, 'test_song_cache')}** |", ""]
        lines += ["The song cache (`lakhnes.models.song_cache`, kept in `config.json`) mixes the network's prediction",
                  "with what the song itself did after the same recent tokens (up to 256 of them), with a weight per",
                  "kind of match fitted on the valid split (`lakhnes eval MODEL --split valid --fit-song-cache`).",
                  "Generation uses it by default (`--no-song-cache`: the network alone, the first two rows).", ""]
    lines += [
              "For scale: the LakhNES paper's Transformer-XL (41 M parameters, 4 GPUs) reached 3.50 on NES-MDB",
              "alone and 2.46 with Lakh pre-training; lakhnes' 5-gram baseline scores 63.07."]
    lines += ["", "## Song statistics", ""]
    lines += [card["songs_md"].strip()] if card.get("songs_md") else [
        "Not measured for this checkpoint yet: `python benchmarks/bench_songs.py -n 100 -j 2 --out results/bench_songs`,",
        "then `python experiments/ship_model.py --card-only DIR --songs-md results/bench_songs.md`."]
    lines += ["", "## Limitations", "",
              "- Trained on a 2-core CPU: far less compute than the paper, so its perplexity is well above the",
              "  paper's; without lakhnes' decoding rules, songs from scratch can thin out to one or two voices.",
              "- It knows only what NES-MDB holds (1980s-90s NES game music, 4 voices, no DPCM samples, no",
              "  dynamics: TX1 carries no volume or timbre, so the synth plays fixed volumes and duty cycles).",
              "- Perplexity measures prediction, not musical quality; listen, and see `benchmarks/bench_songs.py`.",
              "", "## License", "",
              "MIT, as lakhnes. The training data keep their own terms (NES-MDB: research dataset; Lakh MIDI:",
              "CC-BY 4.0; POP909: MIT; JS fakes: CC-BY 4.0); cite NES-MDB and LakhNES when you publish with it.",
              "", "## Citation", "",
              "Chris Donahue, Huanru Henry Mao, Yiting Ethan Li, Garrison W. Cottrell, Julian McAuley. *LakhNES:",
              "Improving multi-instrumental music generation with cross-domain pre-training.* ISMIR 2019.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="run folder (its best checkpoint) or checkpoint folder to ship")
    ap.add_argument("--stage", action="append", default=[], metavar="COMMAND",
                    help="the command of each training stage behind RUN, in order (one per --stage-run)")
    ap.add_argument("--stage-run", action="append", default=[], metavar="RUN",
                    help="run folder of each stage (default: RUN alone)")
    ap.add_argument("--base", help="packaged model (folder or its config.json) whose stages came before")
    ap.add_argument("--valid", help="lakhnes eval JSON on the valid split")
    ap.add_argument("--test", help="lakhnes eval JSON on the test split")
    ap.add_argument("--songs-md", help="Markdown with song statistics (bench_songs) for the card")
    ap.add_argument("--note", action="append", default=[], help="a line for the card under the stages "
                    "(repeatable; with --card-only: replaces the notes)")
    ap.add_argument("--to", default="src/lakhnes/assets/default")
    ap.add_argument("--name", default="lakhnes-small")
    ap.add_argument("--hardware", help="the stages' hardware (default: this machine)")
    ap.add_argument("--card-only", metavar="DIR", help="re-write DIR's README.md (and song stats) only")
    ap.add_argument("--song-cache", nargs=2, metavar=("VALID_JSON", "TEST_JSON"),
                    help="with --card-only: lakhnes eval JSONs of DIR with its song cache (fitted on valid)")
    args = ap.parse_args()
    if args.card_only:
        d = Path(args.card_only)
        meta = json.loads((d / CONFIG_FILE).read_text())
        if args.songs_md or args.note or args.song_cache:
            for split, f in zip(("valid", "test"), args.song_cache or (), strict=False):
                r = json.loads(Path(f).read_text())
                meta.setdefault("card", {}).setdefault("eval", {})[f"{split}_song_cache"] = {
                    k: r[k] for k in ("ppl", "ppl_network", "ppl_song_cache", "ppl_voice_cache", "nll", "targets",
                                      "mem_len") if k in r}
            if args.songs_md:
                meta.setdefault("card", {})["songs_md"] = Path(args.songs_md).read_text()
            if args.note:
                meta.setdefault("card", {})["notes"] = args.note
            write_text_atomic(d / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
        write_text_atomic(d / "README.md", card_markdown(meta, meta.get("card", {}).get("name", args.name)))
        print(f"{d / 'README.md'}: model card written")
        return 0
    if not args.run:
        ap.error("name the RUN to ship (or --card-only DIR)")
    ckpt = resolve_checkpoint(args.run)
    runs = [Path(r) for r in args.stage_run] or [Path(args.run)]
    if len(args.stage) != len(runs):
        ap.error(f"{len(runs)} stage run(s) but {len(args.stage)} --stage command(s)")
    base_card = {}
    if args.base:
        base = Path(args.base) / CONFIG_FILE if Path(args.base).is_dir() else Path(args.base)
        base_card = json.loads(base.read_text()).get("card", {})
    stages = list(base_card.get("stages", []))
    hardware = args.hardware or this_machine()
    stages += [stage_record(r, cmd, hardware, ckpt) for r, cmd in zip(runs, args.stage, strict=True)]
    from lakhnes.models import load_model

    card = {"name": args.name, "stages": stages, "unsplit_seconds": base_card.get("unsplit_seconds", 0), "parameters": load_model(ckpt).num_parameters(),
            "checkpoint": _rel(ckpt), "notes": base_card.get("notes", []) + args.note, "eval": {}}
    for split in ("valid", "test"):
        f = getattr(args, split)
        if f:
            e = json.loads(Path(f).read_text())
            card["eval"][split] = {k: e[k] for k in ("ppl", "nll", "targets", "streams", "tgt_len", "mem_len")}
    if args.songs_md:
        card["songs_md"] = Path(args.songs_md).read_text()
    to = Path(args.to)
    ship(ckpt, to, card)
    meta = json.loads((to / CONFIG_FILE).read_text())
    write_text_atomic(to / "README.md", card_markdown(meta, args.name))
    print(f"{to}: shipped {ckpt} (valid {_ppl(card, 'valid')}, test {_ppl(card, 'test')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
