"""Ship the model that experiments/gpu/run.sh brought back as the packaged ``large`` model.

    python experiments/gpu/ship.py DIR/model                 # DIR: the device tool's files_at
    python experiments/gpu/ship.py DIR/model --to src/lakhnes/assets/large --data data/nesmdb

Checks the folder before anything is copied: the index names every shard, each shard is a
safetensors file of at most 15 MiB holding exactly the tensors the index puts there, 16-bit
floats, the model loads (as float32) from its ``config.json`` with the parameter count the card
states, and it scores a few hundred tokens of the valid split (``--data``) to a finite loss. Then
copies ``config.json``, the index and the shards into a temporary folder beside ``--to``, writes
the model card ``README.md`` there, and renames it into place (a model shipped before is
replaced as a whole). Afterwards ``lakhnes generate -m large``, ``lakhnes eval large`` and
``lakhnes serve -m large`` use it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_SHARD_BYTES = 15 * 2**20


def check(folder: Path, data: Path | None) -> dict:
    """Raise InvalidInputError (one line, naming the file) unless ``folder`` is a sound sharded model."""
    import torch
    from safetensors import safe_open

    from lakhnes.errors import InvalidInputError
    from lakhnes.models import CONFIG_FILE, INDEX_FILE, load_model

    for f in (CONFIG_FILE, INDEX_FILE):
        if not (folder / f).exists():
            raise InvalidInputError(f"missing {f}", str(folder))
    model = load_model(folder)  # every shard readable, every tensor present, shapes as config.json says
    index = json.loads((folder / INDEX_FILE).read_text())
    shards = sorted(set(index["weight_map"].values()))
    for s in shards:
        size = (folder / s).stat().st_size if (folder / s).exists() else None
        if size is None:
            raise InvalidInputError("shard named in the index is missing", str(folder / s))
        if size > MAX_SHARD_BYTES:
            raise InvalidInputError(f"{size} bytes, over 15 MiB", str(folder / s))
        with safe_open(str(folder / s), framework="pt") as h:
            for k in h.keys():
                dt = h.get_slice(k).get_dtype()
                if dt not in ("F16", "BF16"):
                    raise InvalidInputError(f"{k} is {dt}, not a 16-bit float", str(folder / s))
    meta = json.loads((folder / CONFIG_FILE).read_text())
    card = meta.get("card", {})
    if card.get("parameters") not in (None, model.num_parameters()):
        raise InvalidInputError(f"the card says {card['parameters']} parameters, the weights hold "
                                f"{model.num_parameters()}", str(folder / CONFIG_FILE))
    info = {"parameters": model.num_parameters(), "shards": shards, "card": card, "config": meta["config"]}
    if data is not None:
        import numpy as np

        from lakhnes.data.shards import load_split

        x = torch.from_numpy(np.asarray(load_split(data, "valid").tokens[:513], dtype=np.int64))[None]
        with torch.inference_mode():
            logits, _ = model(x[:, :-1])
            nll = torch.nn.functional.cross_entropy(logits[0].double(), x[0, 1:]).item()
        if not math.isfinite(nll):
            raise InvalidInputError(f"the model scores the first 512 valid tokens to NLL {nll}", str(folder))
        info["valid_first_512_nll"] = nll
    return info


def card_markdown(info: dict) -> str:
    """The model card (README.md beside the shards) from config.json's ``card`` record."""
    c, card = info["config"], info["card"]
    ev = card.get("eval", {})
    ppl = {s: f"{ev[s]['ppl']:.3f}" if s in ev else "not measured" for s in ("valid", "test")}
    lines = [
        "---", "license: mit", "library_name: lakhnes",
        "tags: [music-generation, chiptune, nes, transformer-xl, lakhnes]", "datasets: [nes-mdb]",
        "metrics: [perplexity]", "---", "",
        f"# {card.get('name', 'lakhnes-large')}: Transformer-XL over NES-MDB TX1 events", "",
        "`lakhnes generate -m large`, `lakhnes serve -m large`. It predicts the next TX1 event (631 token",
        "types: waits, and note-on / note-off of the NES pulse 1, pulse 2, triangle and noise voices).", "",
        "## Model", "",
        f"- Transformer-XL, {c['n_layer']} layers, d_model {c['d_model']}, {c['n_head']} heads of {c['d_head']}, "
        f"feed-forward {c['d_inner']}, {'pre' if c.get('pre_norm') else 'post'}-norm, "
        f"{'tied' if c.get('tie_weights', True) else 'untied'} output matrix, "
        f"dropout {c['dropout']}; {info['parameters']:,} parameters.",
        f"- Trained on segments of {c['tgt_len']} tokens with a memory of {c['mem_len']}.",
        f"- Files: {len(info['shards'])} safetensors shards ({card.get('weights', '16-bit')}), "
        "`model.safetensors.index.json`, `config.json`; loaded as float32 without pickle.", "",
        "## Training", "",
        "| # | data | steps | tokens | seconds | batch | peak lr | schedule | hardware |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(card.get("stages", []), 1):
        lines.append(f"| {i} | `{Path(s['data']).name}` | {s['steps']:,} | {s['tokens']:,} | {s['seconds']} | "
                     f"{s['batch']} x {s['tgt_len']} | {s['lr']:g} | {s.get('schedule', 'steps')} | {s['hardware']} |")
    lines += ["", "Augmentation as LakhNES (transpose, tempo, voice swap and voice dropping) on the fly; bf16",
              "autocast, fused AdamW; the learning rate's cosine ends with the time budget.", "",
              "## Evaluation (LakhNES protocol: 10 streams, segments of 128, memory 896)", "",
              "| split | PPL |", "|---|---|", f"| NES-MDB valid | {ppl['valid']} |",
              f"| NES-MDB test | **{ppl['test']}** |", "",
              "The paper's 41 M-parameter Transformer-XL: 3.50 on NES-MDB alone.", "",
              "## License", "", "MIT, as lakhnes; NES-MDB keeps its own terms. Cite NES-MDB and LakhNES.", ""]
    return "\n".join(lines)


def ship(folder: Path, to: Path, data: Path | None) -> dict:
    from lakhnes.io import write_text_atomic
    from lakhnes.models import CONFIG_FILE, INDEX_FILE

    info = check(folder, data)
    tmp = to.with_name(f".{to.name}.tmp")
    old = to.with_name(f".{to.name}.old")
    for p in (tmp, old):
        if p.exists():
            shutil.rmtree(p)
    tmp.mkdir(parents=True)
    for name in (CONFIG_FILE, INDEX_FILE, *info["shards"]):
        shutil.copyfile(folder / name, tmp / name)
    write_text_atomic(tmp / "README.md", card_markdown(info))
    check(tmp, None)  # the copy too
    if to.exists():
        to.rename(old)
    tmp.rename(to)
    if old.exists():
        shutil.rmtree(old)
    return info


def main() -> int:
    from lakhnes.errors import InvalidInputError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the sharded model folder that came back ($OUT/model)")
    ap.add_argument("--to", default=str(ROOT / "src" / "lakhnes" / "assets" / "large"))
    ap.add_argument("--data", default=str(ROOT / "data" / "nesmdb"),
                    help="prepared NES-MDB for the scoring check ('' to skip)")
    args = ap.parse_args()
    data = Path(args.data) if args.data and (Path(args.data) / "valid.npy").exists() else None
    try:
        info = ship(Path(args.model), Path(args.to), data)
    except InvalidInputError as e:
        print(f"ship: {e}", file=sys.stderr)
        return 1
    ev = info["card"].get("eval", {})
    print(f"{args.to}: shipped {info['parameters']:,} parameters in {len(info['shards'])} shards"
          + (f" (test PPL {ev['test']['ppl']:.3f})" if "test" in ev else "")
          + "; try: lakhnes generate -m large -o tune.wav")
    return 0


if __name__ == "__main__":
    sys.exit(main())
