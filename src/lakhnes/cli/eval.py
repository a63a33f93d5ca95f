"""``lakhnes eval``: perplexity of a model (or an n-gram baseline) on a prepared split."""

from __future__ import annotations

import re
from pathlib import Path

from lakhnes.cli.common import fail, unwritable, usage_error

#: where results go by default: a folder of the user's (the project's own table lives in results/evals,
#: written only when asked for: --results results/evals)
RESULTS = "lakhnes-results/evals"


def register(sub) -> None:
    p = sub.add_parser("eval", help="test/valid perplexity of a model, unigram or 5gram (LakhNES protocol)")
    p.add_argument("model", metavar="MODEL|unigram|5gram",
                   help="run dir, checkpoint dir, .safetensors, saved n-gram dir; or unigram / 5gram "
                        "(trained on --data's train split, then scored)")
    p.add_argument("--data", required=True, metavar="DIR", help="prepared data folder (lakhnes prepare)")
    p.add_argument("--split", default="test", choices=["test", "valid", "train"])
    p.add_argument("--json", metavar="OUT", help="also write the result JSON here")
    p.add_argument("--results", default=RESULTS, metavar="DIR",
                   help=f"folder of result JSONs that `lakhnes report` gathers (default {RESULTS}; '' for none)")
    p.add_argument("--name", help="model name in the results (default: from MODEL)")
    p.add_argument("--streams", type=int, default=10, help="parallel streams (default 10)")
    p.add_argument("--tgt-len", type=int, default=128, help="segment length (default 128)")
    p.add_argument("--mem-len", type=int, default=896, help="Transformer-XL memory length (default 896)")
    p.add_argument("--no-song-cache", dest="song_cache", action="store_false",
                   help="score the network alone, without the model's song cache (if its config.json has one)")
    p.add_argument("--no-voice-cache", dest="voice_cache", action="store_false",
                   help="score without the voice cache")
    p.add_argument("--no-rhythm-cache", dest="rhythm_cache", action="store_false",
                   help="score without the rhythm cache")
    p.add_argument("--fit-song-cache", action="store_true",
                   help="fit the song, voice and rhythm caches on this split (valid) at --mem-len and write them into the "
                        "model's config.json first (one table per memory length; scoring uses the nearest)")
    p.add_argument("--save", metavar="RUN", help="for unigram/5gram: also save the trained model here")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="torch device for a neural model (default: cuda when available, "
                   "else cpu); it runs in float32")
    p.set_defaults(func=run)


def default_name(model: str) -> str:
    p = Path(model)
    if not p.exists():
        return model
    if p.is_file():
        p = p.parent
    if p.name.startswith(("best", "latest", "step", "ckpt", "checkpoint")) and p.parent.name:
        return f"{p.parent.name}/{p.name}"  # a checkpoint inside a run
    return p.name


def run(args) -> int:
    from lakhnes.errors import InvalidInputError
    from lakhnes.evaluation.perplexity import evaluate, write_result
    from lakhnes.models import SHIPPED
    from lakhnes.models.ngram import parse_name

    if args.streams < 1 or args.tgt_len < 1 or args.mem_len < 0:
        return usage_error("--streams and --tgt-len must be >= 1, --mem-len >= 0")
    if not Path(args.model).exists() and parse_name(args.model) is None and args.model not in SHIPPED:
        return usage_error(f"{args.model}: no such model file or folder (nor unigram / Ngram / {' / '.join(SHIPPED)})")
    if args.device:
        import torch

        try:
            dev = torch.device(args.device)
        except RuntimeError:
            return usage_error(f"--device {args.device}: not a torch device (cpu, cuda, cuda:1, ...)")
        if dev.type == "cuda" and not torch.cuda.is_available():
            return usage_error(f"--device {args.device}: no CUDA device here")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    problem = unwritable([args.results], folder=True) or unwritable([args.json])  # before a long evaluation
    if problem:
        fail(problem)
        return 1
    name = args.name or default_name(args.model)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    # progress of a long evaluation, so that running the same command again resumes it
    keep = Path(args.results) if args.results else Path(args.json).parent if args.json else None
    partial = keep / f".{slug}.{args.split}.partial.safetensors" if keep else None
    try:
        res = evaluate(args.model, args.data, args.split, streams=args.streams, tgt_len=args.tgt_len,
                       mem_len=args.mem_len, save_ngram=args.save, partial=partial, device=args.device,
                       song_cache=args.song_cache, fit_song_cache=args.fit_song_cache, voice_cache=args.voice_cache,
                       rhythm_cache=args.rhythm_cache)
    except InvalidInputError as e:
        fail(str(e))
        return 1
    res["name"] = name
    print(f"{name} on {args.split}: {res['targets']} tokens scored, NLL {res['nll']:.4f} nats, "
          f"PPL {res['ppl']:.3f}  ({res['tokens_per_s']:.0f} tokens/s)"
          + (f"; without the rhythm cache: PPL {res['ppl_voice_cache']:.3f}" if res.get("rhythm_cache") else "")
          + (f"; the song cache alone: PPL {res['ppl_song_cache']:.3f}" if res.get("voice_cache") else "")
          + (f"; the network alone: PPL {res['ppl_network']:.3f}" if res.get("song_cache") else ""))
    if args.json:
        write_result(res, args.json)
    if args.results:
        write_result(res, Path(args.results) / f"{slug}.{args.split}.json")
    return 0
