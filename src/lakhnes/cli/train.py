"""``lakhnes train``: train a language model on a prepared token folder (resumable)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from lakhnes.cli.common import fail, unwritable, usage_error


def register(sub) -> None:
    p = sub.add_parser("train", help="train a Transformer-XL (or LSTM) on prepared tokens",
                       description="Train a language model; re-running into a run folder (or --resume) "
                                   "continues exactly where it stopped.")
    p.add_argument("--config", help="size preset: tiny, small or paper (default small; a resumed run checks that "
                                    "its model is this preset's)")
    p.add_argument("--data", help="prepared folder (lakhnes prepare ...)")
    p.add_argument("-o", "--output", metavar="RUN", help="run folder (checkpoints, logs)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    p.add_argument("--model", choices=["transformer_xl", "lstm", "unigram", "5gram"],
                   help="model type (default transformer_xl); unigram/5gram: count the train split into RUN")
    p.add_argument("--init", metavar="CKPT", help="start from this model (fine-tuning: fresh optimizer and schedule)")
    p.add_argument("--steps", type=int, help="optimizer steps (the cosine schedule ends there). A resumed run takes "
                   "these options, the schedule's, validation's, --keep-last and the speed settings; the others "
                   "(data, model, batch, lengths, seed, augmentation) must match the run's")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--batch", type=int, help="parallel streams per process")
    p.add_argument("--accum", type=int, help="split each batch into this many chunks (gradient accumulation)")
    p.add_argument("--tgt-len", type=int, help="segment length (default: the preset's)")
    p.add_argument("--mem-len", type=int, help="Transformer-XL memory length (default: the preset's or --init model's)")
    p.add_argument("--warmup", type=int, help="warmup steps")
    p.add_argument("--eval-every", type=int, help="validate every N steps")
    p.add_argument("--eval-segments", type=int, help="segments per validation (0: the whole valid split)")
    p.add_argument("--patience", type=int, help="early stopping after N validations without improvement")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="LakhNES data augmentation (default on)")
    p.add_argument("--aug-drop", type=float, metavar="P",
                   help="chance of the voice-dropping augmentation (default 0.5, LakhNES; 0: never)")
    p.add_argument("--aug-swap", type=float, metavar="P",
                   help="chance of the voice-swap augmentation, which moves the melodic parts between P1, P2 and "
                        "TR (default 0.5, LakhNES; 0: every part stays on its own voice)")
    p.add_argument("--aug-speed", choices=["grid", "free", "off"],
                   help="speed augmentation: whole 60 Hz frames scaled, times keep their offset from the frame "
                        "grid (grid, default); every tick scaled (free, LakhNES); none (off)")
    p.add_argument("--schedule", choices=["steps", "time"],
                   help="cosine learning-rate decay over --steps (default), or over --max-minutes of training")
    p.add_argument("--clock", choices=["wall", "cpu"],
                   help="what --max-minutes counts: wall time (default) or this process's CPU time (all threads)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="model_set",
                   help="model config value for a new run, e.g. --set n_head=4 --set dropout=0 (repeatable)")
    p.add_argument("--keep-last", type=int, metavar="N", help="checkpoints kept besides the best (default 2; 0: all)")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-minutes", type=float, help="stop with a checkpoint after M minutes of training time")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for training steps (default: on CUDA and on CPUs with avx512_bf16 or AMX, "
                        "where it trains 1.8x faster at the same loss; elsewhere off)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


OPTION_KEYS = {"steps": "steps", "lr": "lr", "batch": "batch_size", "accum": "accum_steps", "tgt_len": "tgt_len",
               "mem_len": "mem_len",
               "warmup": "warmup_steps", "eval_every": "eval_every", "eval_segments": "eval_segments",
               "patience": "patience", "augment": "augment", "seed": "seed", "max_minutes": "max_minutes",
               "threads": "threads", "bf16": "bf16",
               "aug_drop": "augment_drop", "aug_swap": "augment_swap",
               "aug_speed": "augment_speed", "schedule": "schedule", "keep_last": "keep_last", "clock": "clock"}


#: options that must be at least 1 (or 0) when given
POSITIVE = ("steps", "batch", "accum", "tgt_len", "eval_every")
NON_NEGATIVE = ("mem_len", "warmup", "eval_segments", "patience", "max_minutes", "threads", "keep_last")


def _bad_number(args) -> str | None:
    for k in POSITIVE:
        if getattr(args, k) is not None and getattr(args, k) < 1:
            return f"--{k.replace('_', '-')} must be at least 1 (got {getattr(args, k)})"
    for k in NON_NEGATIVE:
        if getattr(args, k) is not None and getattr(args, k) < 0:
            return f"--{k.replace('_', '-')} must not be negative (got {getattr(args, k)})"
    if args.lr is not None and not args.lr > 0:
        return f"--lr must be positive (got {args.lr})"
    return None


def run_ngram(args, out: str) -> int:
    """``--model unigram|5gram``: count the train split of --data and save the model into RUN."""
    from lakhnes.errors import InvalidInputError
    from lakhnes.models.ngram import parse_name, train_ngram

    if not args.data:
        return usage_error("--data DIR is required")
    try:
        m = train_ngram(args.data, out, parse_name(args.model))
    except InvalidInputError as e:
        fail(str(e))
        return 1
    print(f"{out}: {args.model} ({m.config.smoothing}) from {m.train_tokens} train tokens, "
          f"{m.num_parameters()} n-grams; score it with `lakhnes eval {out} --data {args.data}`")
    return 0


def parse_sets(items: list[str], model: dict) -> dict:
    """``KEY=VALUE`` model overrides, each value parsed as JSON (numbers, true/false) or kept as text;
    a key the model config lacks is an error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        if key not in model:
            raise ValueError(f"--set {key}: not a model config key (known: {', '.join(sorted(model))})")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def new_model(args, model: dict) -> dict:
    """The model config of a new run: ``model`` (a preset's) with --mem-len, --tgt-len and the --set values."""
    model = dict(model)
    if args.mem_len is not None and "mem_len" in model:
        model["mem_len"] = args.mem_len
    if args.tgt_len is not None and "tgt_len" in model:
        model["tgt_len"] = args.tgt_len
    sets = parse_sets(args.model_set, model)
    if "d_head" in model and {"n_head", "d_model"} & set(sets) and "d_head" not in sets:
        sets["d_head"] = 0  # recomputed as d_model // n_head
    return {**model, **sets}


#: the config field each option sets, for the options that are not in OPTION_KEYS
FIELD_OPTIONS = {"data": "data", "init": "init", "model_type": "model", **{v: k for k, v in OPTION_KEYS.items()}}


def resume_problem(args, out: str, cfg) -> str | None:
    """Why this command line cannot resume the run ``cfg`` (an option it gives that the run cannot change on
    resume, with a value unlike the run's), as a one-line error; None when it can."""
    from lakhnes.training.config import preset_config, resume_conflicts

    given = {OPTION_KEYS[k]: v for k, v in vars(args).items() if k in OPTION_KEYS}
    given.update(data=args.data, init=args.init, model_type=args.model)
    for key in resume_conflicts(cfg, given):
        opt = "--" + FIELD_OPTIONS[key].replace("_", "-")
        return (f"{opt} {given[key]}: {out} was trained with {key} {getattr(cfg, key)!r}, which a resumed run keeps "
                f"(train into a new run folder to change it)")
    try:
        sets = parse_sets(args.model_set, cfg.model)
    except ValueError as e:
        return str(e)
    for key, v in sets.items():
        if cfg.model[key] != v:
            return f"--set {key}={v}: {out}'s model has {key} {cfg.model[key]!r}, which a resumed run keeps"
    if args.config and not (cfg.init or args.init):  # an --init model brings its own shape
        preset = new_model(args, preset_config(args.config, cfg.model_type).model)
        diff = sorted(k for k in preset if k not in ("mem_len", "tgt_len") and preset[k] != cfg.model.get(k))
        if diff:
            return (f"--config {args.config}: {out}'s model is not this preset's ({diff[0]} {cfg.model.get(diff[0])!r}, "
                    f"the preset's {preset[diff[0]]!r}), and a resumed run keeps its model")
    return None


def run(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.training import TrainConfig, preset_config, train
    from lakhnes.training.config import RESUMABLE, resume_config

    bad = _bad_number(args)
    if bad:
        return usage_error(bad)
    if args.resume and args.output and Path(args.resume) != Path(args.output):
        return usage_error("give the run folder once (--resume RUN or -o RUN)")
    out = args.resume or args.output
    if not out:
        return usage_error("name the run folder with -o RUN (or --resume RUN)")
    if args.model in ("unigram", "5gram"):
        return run_ngram(args, out)
    problem = unwritable([out], folder=True)
    if problem:
        fail(problem)
        return 1
    say = print if os.environ.get("RANK", "0") == "0" else _quiet  # under torchrun: rank 0 speaks for all
    resuming = (Path(out) / "latest.json").exists()
    if args.resume and not resuming:
        return usage_error(f"{out}: no checkpoint to resume")
    overrides = {OPTION_KEYS[k]: v for k, v in vars(args).items() if k in OPTION_KEYS and v is not None}
    if args.compile:
        overrides["compile"] = True
    try:
        if resuming:
            stored = TrainConfig.from_dict(json.loads((Path(out) / "train_config.json").read_text()))
            problem = resume_problem(args, out, stored)
            if problem:
                return usage_error(problem)
            changed = [f"{k} {v}" for k, v in overrides.items() if k in RESUMABLE and getattr(stored, k) != v]
            say(f"resuming {out} (config from its train_config.json{'; now ' + ', '.join(changed) if changed else ''})")
            cfg = resume_config(dataclasses.asdict(stored), overrides)
        else:
            if not args.data:
                return usage_error("--data DIR is required for a new run")
            if args.model_set and args.init:
                return usage_error("--set changes a new model's shape; an --init model keeps its own")
            cfg = preset_config(args.config or "small", args.model or "transformer_xl", data=args.data,
                                init=args.init, **overrides)
            try:
                cfg.model = new_model(args, cfg.model)
            except ValueError as e:
                return usage_error(str(e))
        summary = train(cfg, out, progress=not args.no_progress, resume_overrides=overrides)
    except InvalidInputError as e:
        fail(str(e))
        return 1
    best = ("no validation yet" if summary["best_step"] is None
            else f"best valid ppl {summary['best_valid_ppl']:.3f} at step {summary['best_step']}")
    say(f"{out}: step {summary['step']} ({summary['stopped']}), {best}")
    return 0


def _quiet(*args, **kwargs) -> None:
    """``print`` for the ranks other than 0 of a ``torchrun`` job: says nothing."""
