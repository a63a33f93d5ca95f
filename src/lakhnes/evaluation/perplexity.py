"""Test perplexity on a prepared split, with the protocol LakhNES used for Transformer-XL.

Protocol (the same tokens for every model):

1. The split's songs (each ``<S> … <S>``, leading/trailing waits trimmed, songs under 10
   tokens dropped: the prepared shard) are concatenated: N tokens.
2. They are cut into ``streams`` (10) contiguous parallel streams, in order; stream s holds
   ``N // streams`` tokens, plus one for the first ``N % streams`` streams (nothing dropped).
3. Within each stream every token except the first is a prediction target, predicted from
   the tokens before it *in that stream*: N - streams targets, each scored exactly once.
4. Neural models read the streams as a batch in segments of ``tgt_len`` (128) tokens,
   carrying their state: Transformer-XL a memory of ``mem_len`` (896) hidden states per
   layer, the LSTM its (h, c). N-gram models use the previous n-1 ids of the same stream.
5. NLL = mean negative log-likelihood per target (nats); PPL = exp(NLL).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lakhnes.core.vocab import VOCAB_SIZE
from lakhnes.data.shards import load_split
from lakhnes.errors import InvalidInputError
from lakhnes.io import atomic_path
from lakhnes.models import ngram
from lakhnes.progress import progress_bar

STREAMS, TGT_LEN, MEM_LEN = 10, 128, 896


def protocol_text(n_tokens: int, streams: int) -> str:
    return (f"{n_tokens} tokens in {streams} streams; every token but the first of each stream is a "
            f"target: {n_tokens - streams} targets, each scored once")


def layout_streams(tokens, streams: int = STREAMS) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``tokens`` into ``streams`` contiguous rows (padded with 0 at the end): ids
    [streams, L] and each row's length (lengths differ by at most one)."""
    t = np.asarray(tokens, dtype=np.int64)
    n = len(t)
    if streams < 1:
        raise InvalidInputError(f"--streams must be at least 1, not {streams}")
    if n < 2 * streams:
        raise InvalidInputError(f"{n} tokens are too few for {streams} streams")
    lengths = np.full(streams, n // streams, dtype=np.int64)
    lengths[: n % streams] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.zeros((streams, int(lengths.max())), dtype=np.int64)
    for s in range(streams):
        rows[s, : lengths[s]] = t[starts[s] : starts[s + 1]]
    return rows, lengths


def _result(nll_sum: float, targets: int, n: int, streams: int, seconds: float, **extra) -> dict:
    nll = nll_sum / targets
    return {"tokens": n, "streams": streams, "targets": targets, "nll": nll, "ppl": math.exp(nll),
            "bits_per_token": nll / math.log(2), "seconds": seconds,
            "tokens_per_s": targets / seconds if seconds > 0 else None, **extra}


def _save_partial(path: Path, key: str, seg: int, total: tuple, targets: int, seconds: float, state) -> None:
    """Progress of an evaluation: the model state (safetensors) and the sums so far (metadata)."""
    from safetensors.torch import save_file

    flat = [] if state is None else list(state)
    meta = {"key": key, "segment": str(seg), "total": json.dumps(list(total)), "targets": str(targets),
            "seconds": repr(seconds), "n_state": str(len(flat)),
            "state_type": "none" if state is None else type(state).__name__}
    with atomic_path(path) as tmp:
        save_file({f"s{k}": t.contiguous() for k, t in enumerate(flat)}, str(tmp), metadata=meta)


def _load_partial(path: Path, key: str, device):
    """(segment, total, targets, seconds, state) saved by an interrupted run with the same key, or None."""
    from safetensors import safe_open

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata()
            if meta.get("key") != key:
                return None
            flat = [f.get_tensor(f"s{k}") for k in range(int(meta["n_state"]))]
    except Exception:  # unreadable: start over
        return None
    kind = meta["state_type"]
    state = None if kind == "none" else (tuple(flat) if kind == "tuple" else flat)
    try:
        total = tuple(float(v) for v in json.loads(meta["total"]))
    except (TypeError, ValueError):  # another version's file: start over
        return None
    return int(meta["segment"]), total, int(meta["targets"]), float(meta["seconds"]), state


@torch.inference_mode()
def evaluate_lm(model: torch.nn.Module, tokens, *, streams: int = STREAMS, tgt_len: int = TGT_LEN,
                mem_len: int | None = MEM_LEN, progress: bool = False, partial: str | None = None,
                partial_key: str = "", save_every: int = 100, log=None, song_cache=None,
                voice_cache=None, rhythm_cache=None, collect: list | None = None) -> dict:
    """Score a torch language model (the shared contract: ``forward(x, state)``) on ``tokens``.

    ``mem_len`` sets a Transformer-XL's memory length for this evaluation (ignored by models
    without ``config.mem_len`` memory, e.g. the LSTM; None keeps the model's own).
    With ``partial`` (a file path), progress is saved there every ``save_every`` segments and
    a later call with the same ``partial_key`` resumes from it; the file is removed at the end.
    ``song_cache``: a λ table (:mod:`lakhnes.models.song_cache`): the model's probabilities are mixed
    with each stream's song cache (``ppl``; the network alone: ``ppl_network``). ``voice_cache``: a mu
    table (:mod:`lakhnes.models.voice_cache`, on top of the song cache; ``ppl_song_cache``: without it).
    ``rhythm_cache``: a rho table (:mod:`lakhnes.models.rhythm_cache`, on top of both; ``ppl_voice_cache``:
    the song and voice caches without it).
    ``collect``: a list that receives, per segment, a dict of the targets' arrays (for fitting)."""
    if tgt_len < 1:
        raise InvalidInputError(f"--tgt-len must be at least 1, not {tgt_len}")
    rows, lengths = layout_streams(tokens, streams)
    n = int(lengths.sum())
    model.eval()
    uses_mem = hasattr(model, "init_state") and isinstance(model.init_state(1), list)
    old_mem = getattr(model.config, "mem_len", None)
    if uses_mem and mem_len is not None:
        model.config.mem_len = int(mem_len)
    device = next(model.parameters()).device
    x_all = torch.from_numpy(rows).to(device)
    valid = torch.from_numpy(np.arange(rows.shape[1])[None] < lengths[:, None]).to(device)
    total, targets, start, before = 0.0, 0, 0, 0.0
    net_total = 0.0  # the network alone (equals total without a song cache)
    cached = song_cache is not None or collect is not None
    voiced = cached and (voice_cache is not None or collect is not None)
    rhythmic = cached and (rhythm_cache is not None or collect is not None)
    if cached:
        from lakhnes.models import rhythm_cache as rc
        from lakhnes.models import voice_cache as vc

        scores = {k: np.zeros((streams, rows.shape[1] - 1), np.float64 if k in ("pc", "pcf", "cv", "rc") else np.int64)
                  for k in ("b", "pc", "fam", "pcf", "vb", "cv", "rb", "rc")}
        for s in range(streams):
            for k, v in vc.stream_scores(rows[s, : lengths[s]]).items():
                scores[k][s, : len(v)] = v
            if rhythmic:
                rb, rp = rc.stream_scores(rows[s, : lengths[s]])
                scores["rb"][s, : len(rb)], scores["rc"][s, : len(rp)] = rb, rp
        lam = np.zeros(int(scores["b"].max()) + 1) if song_cache is None else np.asarray(song_cache, np.float64)
        mu = np.zeros(vc.N_BUCKETS) if voice_cache is None else np.asarray(voice_cache, np.float64)
        rho = np.zeros(rc.N_BUCKETS) if rhythm_cache is None else np.asarray(rhythm_cache, np.float64)
        families = [torch.from_numpy(vc.noteon_ids(vc.VOICES[v])).to(device) for v in vc.MELODIC]
    song_total = voice_total = 0.0  # the song cache alone; the song and voice caches
    state = model.init_state(streams, device)
    key = json.dumps([partial_key, n, streams, tgt_len, mem_len, None if song_cache is None else list(song_cache),
                      None if voice_cache is None else list(voice_cache),
                      None if rhythm_cache is None else list(rhythm_cache)])
    saved = _load_partial(Path(partial), key, device) if partial else None
    if saved is not None and collect is None:
        start, (total, net_total, song_total, voice_total), targets, before, state = saved
        if log:
            log(f"resuming from segment {start} ({targets} targets already scored; {partial})")
    t0 = time.perf_counter()
    steps = range(0, rows.shape[1] - 1, tgt_len)
    try:
        bar = progress_bar(steps[start:], desc="eval", unit="seg", disable=None if progress else True, leave=False,
                           initial=start, total=len(steps), plain=True)  # plain lines into a log file
        for k, i in enumerate(bar, start):
            if partial and k > start and (k - start) % save_every == 0:
                _save_partial(Path(partial), key, k, (total, net_total, song_total, voice_total), targets,
                              before + time.perf_counter() - t0, state)
            j = min(i + tgt_len, rows.shape[1] - 1)
            logits, state = model(x_all[:, i:j], state)
            y, keep = x_all[:, i + 1 : j + 1], valid[:, i + 1 : j + 1]
            lp = torch.log_softmax(logits.double(), -1)  # the voice cache also reads its families' masses
            nll = F.nll_loss(lp.reshape(-1, lp.size(-1)), y.reshape(-1), reduction="none")
            net = float(nll[keep.reshape(-1)].sum())
            net_total += net
            if cached:
                m = keep.cpu().numpy()
                t = {k: v[:, i:j][m] for k, v in scores.items()}
                t["pm"] = np.exp(-nll.cpu().numpy().reshape(m.shape))[m]
                x = lam[t["b"]]
                p1 = x * t["pc"] + (1 - x) * t["pm"]
                song_total += float(-np.log(p1).sum())
                if voiced or rhythmic:  # the network's mass on the target's melodic voice's note-ons
                    fam_lp = torch.stack([torch.logsumexp(lp[..., f], -1) for f in families], -1).cpu().numpy()[m]
                    f = t["fam"]
                    t["pmf"] = np.where(f >= 0, np.exp(np.take_along_axis(fam_lp, np.maximum(f, 0)[:, None], 1)[:, 0]), 0)
                    pf = x * t["pcf"] + (1 - x) * t["pmf"]  # no cache moves it before the rhythm cache
                    p1 = vc.mixed(p1, pf, t["vb"], t["cv"], mu)
                    voice_total += float(-np.log(p1).sum())
                    if rhythmic:
                        p1 = rc.mixed(p1, pf, f, t["rb"], t["rc"], rho)
                if collect is not None:
                    collect.append(t)
                total += float(-np.log(p1).sum())
            else:
                total += net
            targets += int(keep.sum())
    finally:
        if uses_mem and mem_len is not None:
            model.config.mem_len = old_mem
    assert targets == n - streams
    if partial and Path(partial).exists():
        Path(partial).unlink()
    extra = {} if song_cache is None else {"song_cache": True, "ppl_network": math.exp(net_total / targets)}
    if song_cache is not None and voice_cache is not None:
        extra.update(voice_cache=True, ppl_song_cache=math.exp(song_total / targets))
    if song_cache is not None and rhythm_cache is not None:
        extra.update(rhythm_cache=True, ppl_voice_cache=math.exp(voice_total / targets))
    return _result(total, targets, n, streams, before + time.perf_counter() - t0, tgt_len=tgt_len,
                   mem_len=int(mem_len if (uses_mem and mem_len is not None) else (old_mem or 0)), **extra)


def evaluate_ngram(model: ngram.NGramLM, tokens, *, streams: int = STREAMS, progress: bool = False) -> dict:
    """Score an n-gram model on the same targets as :func:`evaluate_lm`."""
    rows, lengths = layout_streams(tokens, streams)
    t0 = time.perf_counter()
    total = 0.0
    for s in progress_bar(range(streams), desc="eval", unit="stream", disable=None if progress else True, leave=False,
                          plain=True):
        total += model.stream_nll(rows[s, : lengths[s]])
    n = int(lengths.sum())
    return _result(total, n - streams, n, streams, time.perf_counter() - t0, order=model.order)


def run_metadata(model_path, data_dir) -> dict:
    """What a torch checkpoint says about its training: step, augmentation, epochs (tokens seen
    divided by the tokens of ``data_dir``'s train split)."""
    from lakhnes.models import resolve_checkpoint

    ckpt = resolve_checkpoint(model_path)
    out: dict = {"checkpoint": str(ckpt)}
    try:
        cfg = json.loads((ckpt / "config.json").read_text())
        state = json.loads((ckpt / "state.json").read_text()) if (ckpt / "state.json").exists() else {}
    except ValueError:
        return out
    train = cfg.get("train") or {}
    for k in ("step", "valid_ppl"):
        if cfg.get(k) is not None:
            out["train_" + k if k == "valid_ppl" else k] = cfg[k]
    if "augment" in train:
        out["augment"] = bool(train["augment"])
    tokens = state.get("tokens") or cfg.get("train_tokens")  # a sharded model folder: from its card
    if tokens:
        n_train = int(load_split(data_dir, "train").offsets[-1])
        out["train_tokens_seen"] = int(tokens)
        out["epochs"] = round(tokens / n_train, 3)
    return out


def evaluate(model_spec: str, data_dir, split: str = "test", *, streams: int = STREAMS,
             tgt_len: int = TGT_LEN, mem_len: int = MEM_LEN, save_ngram: str | None = None,
             partial: str | None = None, progress: bool = True, log=print, device: str | None = None,
             song_cache: bool = True, fit_song_cache: bool = False, voice_cache: bool = True,
             rhythm_cache: bool = True) -> dict:
    """Evaluate a model path (run dir, checkpoint dir, sharded model folder, .safetensors, saved
    n-gram, shipped model name) or a named n-gram (``unigram``, ``5gram``: trained on
    ``data_dir``'s train split first). ``partial``: file where a neural model's evaluation saves
    its progress (resumable). ``device``: where a neural model runs (default: cuda when available,
    else cpu), in float32. ``song_cache``: a Transformer-XL whose ``config.json`` has a song cache is
    scored with it and with its voice and rhythm caches when it has them (``voice_cache`` /
    ``rhythm_cache`` False: without that one; ``song_cache`` False: the network alone).
    ``fit_song_cache``: fit the three caches' tables on this split (valid, never test) and write them
    into the model's ``config.json`` first."""
    tokens = np.asarray(load_split(data_dir, split).tokens)
    if len(tokens) < 2 * max(streams, 1):
        raise InvalidInputError(f"{split} split: {len(tokens)} tokens are too few for {streams} streams",
                                str(data_dir))
    order = ngram.parse_name(model_spec) if not Path(model_spec).exists() else None
    info: dict = {"model": model_spec, "split": split, "data": str(data_dir)}
    if order is not None or ngram.is_ngram_dir(model_spec):
        if order is not None:
            t0 = time.perf_counter()
            m = ngram.NGramLM.train(np.asarray(load_split(data_dir, "train").tokens), order)
            log(f"trained {model_spec} on {data_dir} train ({m.train_tokens} tokens) in "
                f"{time.perf_counter() - t0:.1f} s")
            if save_ngram:
                m.save(save_ngram, {"data": str(data_dir), "train_split": "train"})
            info["model_type"] = "unigram" if order == 1 else f"{order}gram"
        else:
            m = ngram.NGramLM.load(model_spec)
            info["model_type"] = "unigram" if m.order == 1 else f"{m.order}gram"
        info.update(parameters=m.num_parameters(), smoothing=m.config.smoothing, epochs=1)
        log(protocol_text(len(tokens), streams))
        res = evaluate_ngram(m, tokens, streams=streams, progress=progress)
    else:
        from lakhnes.models import load_model, model_type_of

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(model_spec, device=device)
        info.update(model_type=model_type_of(model), parameters=model.num_parameters(), device=str(device),
                    **run_metadata(model_spec, data_dir))
        log(protocol_text(len(tokens), streams))
        key = f"{info.get('checkpoint')}|{Path(data_dir).resolve()}|{split}"
        lam = mu = rho = None
        if info["model_type"] == "transformer_xl":
            from lakhnes.models.song_cache import read_lambdas

            if fit_song_cache:
                res = _fit_song_cache(model, model_spec, tokens, split, streams=streams, tgt_len=tgt_len,
                                      mem_len=mem_len, progress=progress, log=log)
                return {**info, **res}
            if song_cache:
                from lakhnes.models.rhythm_cache import read_rho
                from lakhnes.models.voice_cache import read_mu

                lam = read_lambdas(model_spec, mem_len=mem_len)
                mu = read_mu(model_spec, mem_len=mem_len) if voice_cache and lam is not None else None
                rho = read_rho(model_spec, mem_len=mem_len) if rhythm_cache and lam is not None else None
        elif fit_song_cache:
            raise InvalidInputError("only a Transformer-XL takes a song cache", model_spec)
        res = evaluate_lm(model, tokens, streams=streams, tgt_len=tgt_len, mem_len=mem_len, progress=progress,
                          partial=partial, partial_key=key, log=log, song_cache=lam, voice_cache=mu,
                          rhythm_cache=rho)
    return {**info, **res}


def _fit_song_cache(model, model_spec, tokens, split, *, log, **kw) -> dict:
    """Fit the song cache's λ table, then the voice cache's mu and the rhythm cache's rho on top of it,
    on ``tokens`` (the valid split) and write them into the ``config.json`` of ``model_spec``; returns
    the evaluation on ``tokens`` with them (in-sample)."""
    from lakhnes.models import rhythm_cache as rc
    from lakhnes.models import voice_cache as vc
    from lakhnes.models.files import read_config
    from lakhnes.models.song_cache import fit_lambdas, merge_table

    if split == "test":
        raise InvalidInputError("fit the song cache on the valid split, never on test (it is scored there)",
                                str(model_spec))
    collect: list = []
    res = evaluate_lm(model, tokens, collect=collect, **kw)
    t = {k: np.concatenate([c[k] for c in collect]) for k in collect[0]}
    lam = fit_lambdas(t["b"], t["pm"], t["pc"])
    x = lam[t["b"]]
    p1, p1f = x * t["pc"] + (1 - x) * t["pm"], x * t["pcf"] + (1 - x) * t["pmf"]
    mu = fit_lambdas(t["vb"], p1, p1f * t["cv"])[: vc.N_BUCKETS]
    p2 = vc.mixed(p1, p1f, t["vb"], t["cv"], mu)
    rho = fit_lambdas(t["rb"], p2, rc.mixed(p2, p1f, t["fam"], t["rb"], t["rc"], np.ones(rc.N_BUCKETS)))
    nll = float(-np.log(rc.mixed(p2, p1f, t["fam"], t["rb"], t["rc"], rho)).mean())
    res.update(nll=nll, ppl=math.exp(nll), bits_per_token=nll / math.log(2), song_cache=True, voice_cache=True,
               rhythm_cache=True, ppl_network=res["ppl"], ppl_song_cache=math.exp(float(-np.log(p1).mean())),
               ppl_voice_cache=math.exp(float(-np.log(p2).mean())), song_cache_fitted_here=True)
    ckpt, meta = read_config(model_spec)
    about = {"fitted_on": split, "targets": int(len(t["b"]))}
    meta["song_cache"] = merge_table(meta.get("song_cache"), lam, kw["mem_len"], **about)
    meta["voice_cache"] = vc.merge_tables(meta.get("voice_cache"), mu, kw["mem_len"], **about)
    meta["rhythm_cache"] = rc.merge_tables(meta.get("rhythm_cache"), rho, kw["mem_len"], **about)
    with atomic_path(ckpt / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"song, voice and rhythm caches fitted on {split} ({len(t['b'])} targets) and written into {ckpt / 'config.json'}")
    return res


def write_result(result: dict, path: str | os.PathLike) -> Path:
    p = Path(path)
    with atomic_path(p) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    return p


def uniform_nll() -> float:
    """NLL of a model that predicts every id with probability 1/631 (PPL = 631)."""
    return math.log(VOCAB_SIZE)
