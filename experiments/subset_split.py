"""Copy a prepared data folder keeping every N-th train song (valid and test whole): a
data-limited proxy for recipe arms (`experiments/recipe.sh`).

    python experiments/subset_split.py data/nesmdb runs/recipe/nesmdb_sub16 --every 16
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from lakhnes.data.shards import ShardWriter, load_manifest, load_split, write_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--every", type=int, default=16, help="keep train songs 0, N, 2N, ... (default 16)")
    args = ap.parse_args()
    if args.every < 1:
        ap.error("--every must be at least 1")
    manifest = load_manifest(args.src)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = load_split(args.src, "train")
    w = ShardWriter(out, "train")
    for k in range(0, len(train), args.every):
        w.add(train.names[k], train.song(k))
    w.close()
    for split in ("valid", "test"):
        for suffix in (".npy", ".offsets.npy", ".names.txt"):
            shutil.copyfile(Path(args.src) / f"{split}{suffix}", out / f"{split}{suffix}")
    splits = dict(manifest.get("splits", {}))
    splits["train"] = {**splits.get("train", {}), "songs": len(w.names), "tokens": int(w.num_tokens)}
    keep = {k: v for k, v in manifest.items() if k not in ("vocab_version", "vocab_hash", "vocab_size")}
    write_manifest(out, {**keep, "splits": splits, "subset": f"every {args.every}th train song of {args.src}"})
    print(json.dumps({"out": str(out), "train_songs": len(w.names), "train_tokens": int(w.num_tokens)}))


if __name__ == "__main__":
    main()
