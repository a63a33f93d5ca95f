"""A listening study: its settings, its folder, and how a batch of pairs is drawn.

A study folder (written by :func:`setup_study` under a temporary name and renamed when complete;
an existing study is never overwritten)::

    study.json          settings, systems, every clip (system, song, offset, gain), the results key
    clips/<id>.wav      loudness-matched clips; ids are random and say nothing about the clip
    songs/<system>/     songs made for the study: the random model's, and each model system's
    answers.sqlite      the answers (:mod:`lakhnes.listen.store`), created by the server

Systems: ``real`` (a folder of NES-MDB songs), ``random`` (the uniformly random model, only in
control pairs) and the systems under study: folders of songs, or models whose songs are generated
here, ahead of the study. Each test has its own clips (``turing_seconds``, ``preference_seconds``
long): ``clips`` per system, and in the Turing test, where every pair holds a real clip,
``clips × (systems + 1)`` real ones. Clip choice is seeded per (seed, test, system): adding a
system leaves the other systems' clips as they were.

A batch (:func:`compose_batch`) holds ``pairs`` pairs, ``controls`` of them real vs random, in a
random order with random sides. Turing test: every other pair is real vs a system, the systems
taking turns (a fresh random order each round), so each appears equally often ±1. Preference test:
every other pair is two different systems (real included), the unordered system pairs taking turns
the same way. Within a batch no clip is drawn twice while its pool lasts, and the clips the
listener has heard least are drawn first.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

import numpy as np

from lakhnes.errors import InvalidInputError
from lakhnes.io import write_text_atomic
from lakhnes.listen import clips as C

FORMAT = "lakhnes-listen-1"
REAL, RANDOM = "real", "random"
#: test → the question the page asks, and what a result means
TESTS = {
    "turing": {"question": "Which one did a human write?", "label": "Turing test",
               "measure": "listeners' accuracy (lower = more human-like)"},
    "preference": {"question": "Which one do you prefer?", "label": "Preference test",
                   "measure": "share of comparisons won"},
}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,31}$")


@dataclass(frozen=True)
class Settings:
    """A study's settings (the paper's defaults). ``song_seconds``: length of the songs the random
    model and model systems write (default: twice the longest clip, so slices start anywhere)."""

    seed: int = 0
    tests: tuple[str, ...] = ("turing", "preference")
    turing_seconds: float = 5.0
    preference_seconds: float = 10.0
    clips: int = 20
    pairs: int = 10
    controls: int = 2
    turing_min_batches: int = 3
    preference_min_batches: int = 1
    target_dbfs: float = C.TARGET_DBFS
    song_seconds: float | None = None

    def check(self) -> Settings:
        """Raise ``InvalidInputError`` (its ``path`` the setting's name) for a bad value."""
        def bad(name, why):
            raise InvalidInputError(why, name)

        if not self.tests or any(t not in TESTS for t in self.tests) or len(set(self.tests)) != len(self.tests):
            bad("tests", f"choose one or both of {', '.join(TESTS)}, not {','.join(self.tests)!r}")
        if not 0 <= self.seed < 2**32:
            bad("seed", f"{self.seed} is outside 0-{2**32 - 1}")
        for name in ("turing_seconds", "preference_seconds"):
            if not 0.1 <= getattr(self, name) <= 60:
                bad(name, f"{getattr(self, name):g} s is outside 0.1-60 s")
        if not 1 <= self.clips <= 10000:
            bad("clips", f"{self.clips} is outside 1-10000")
        if not 2 <= self.pairs <= 100:
            bad("pairs", f"{self.pairs} is outside 2-100")
        if not 0 <= self.controls < self.pairs:
            bad("controls", f"{self.controls} must be 0 or more and fewer than the pairs ({self.pairs})")
        for name in ("turing_min_batches", "preference_min_batches"):
            if not 1 <= getattr(self, name) <= 1000:
                bad(name, f"{getattr(self, name)} is outside 1-1000")
        if not -60 <= self.target_dbfs <= -6:
            bad("target_dbfs", f"{self.target_dbfs:g} dBFS is outside -60 to -6")
        if self.song_seconds is not None and not self.clip_seconds() <= self.song_seconds <= 600:
            bad("song_seconds", f"{self.song_seconds:g} s must be at least the longest clip "
                f"({self.clip_seconds():g} s) and at most 600 s")
        return self

    def seconds(self, test: str) -> float:
        return self.turing_seconds if test == "turing" else self.preference_seconds

    def clip_seconds(self) -> float:
        return max(self.seconds(t) for t in self.tests)

    def min_batches(self, test: str) -> int:
        return self.turing_min_batches if test == "turing" else self.preference_min_batches

    def made_song_seconds(self) -> float:
        return self.song_seconds if self.song_seconds is not None else 2 * self.clip_seconds()

    @classmethod
    def from_dict(cls, d: Mapping) -> Settings:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "tests" in d:
            d["tests"] = tuple(d["tests"])
        return cls(**d)


#: writes ``n`` songs of ``seconds`` into a folder (which it creates), from ``seed``
SongMaker = Callable[[Path, int, float, int], None]


@dataclass
class SystemSpec:
    """A system under study: a ``folder`` of songs, or ``make_songs`` that writes them (a model).
    ``info`` is recorded in ``study.json`` (e.g. the model's path and its sampling options)."""

    name: str
    folder: Path | None = None
    make_songs: SongMaker | None = None
    info: dict = field(default_factory=dict)


def write_random_songs(folder: Path, n: int, seconds: float, seed: int) -> None:
    """``n`` songs of the uniformly random model (NES-MDB MIDI), ``000.mid`` ..."""
    from lakhnes.formats.midi import write_midi

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_midi(C.random_song(seconds, rng, name=f"random_{i:03d}"), folder / f"{i:03d}.mid")


def _seed(*parts) -> list[int]:
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise InvalidInputError("a system name is a letter then up to 31 letters, digits or _ . + -", name or "''")
    if name.lower() in (REAL, RANDOM):
        raise InvalidInputError(f"{name!r} is reserved (the real songs and the random model)", name)
    return name


def setup_study(out: str | os.PathLike, real: str | os.PathLike, systems: list[SystemSpec],
                settings: Settings = Settings(), log: Callable[[str], None] | None = None) -> Study:
    """Build a study folder at ``out``: make the songs of the random model and of model systems,
    cut, render and loudness-match every clip, write ``study.json``. ``out`` must not exist or be
    an empty folder. Raises ``InvalidInputError`` naming the bad input."""
    settings.check()
    log = log or (lambda s: None)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError("already exists and is not an empty folder (a study is never overwritten)", str(out))
    if not systems:
        raise InvalidInputError("a study needs at least one system to compare with the real songs")
    names = [check_name(s.name) for s in systems]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InvalidInputError("two systems have this name", dup)
    real_songs = C.find_songs(real)
    if not real_songs:
        raise InvalidInputError(f"no songs here ({', '.join(C.SONG_SUFFIXES)})", str(real))
    for s in systems:
        if (s.folder is None) == (s.make_songs is None):
            raise InvalidInputError("a system is a folder of songs or a model, not both or neither", s.name)
        if s.folder is not None and not C.find_songs(s.folder):
            raise InvalidInputError(f"no songs here for system {s.name!r} ({', '.join(C.SONG_SUFFIXES)})",
                                    str(s.folder))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.setup-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "clips").mkdir(parents=True)
    try:
        song_s = settings.made_song_seconds()
        table = [{"name": REAL, "kind": "real", "folder": str(Path(real).resolve()), "root": Path(real)}]
        made = [SystemSpec(RANDOM, make_songs=write_random_songs, info={"model": "uniformly random valid TX1"})]
        made = made if settings.controls else []  # the random model plays only in control pairs
        for spec in made + systems:
            kind = RANDOM if spec.name == RANDOM else "model" if spec.make_songs is not None else "folder"
            entry = {"name": spec.name, "kind": kind, **spec.info}
            if spec.make_songs is not None:
                folder = tmp / "songs" / spec.name
                log(f"{spec.name}: writing {settings.clips} songs of {song_s:g} s")
                seed = int(np.random.SeedSequence(_seed(settings.seed, "songs", spec.name)).generate_state(1)[0])
                spec.make_songs(folder, settings.clips, song_s, seed)
                entry.update(songs=f"songs/{spec.name}", song_seconds=song_s, root=folder,
                             where=str(spec.info.get("model", spec.name)))
            else:
                entry.update(folder=str(Path(spec.folder).resolve()), root=Path(spec.folder))
            table.append(entry)

        clips, skipped = [], {}
        n_systems = len(systems)
        for test in settings.tests:
            secs = settings.seconds(test)
            for entry in table:
                if test == "turing" and entry["name"] == REAL:
                    k = settings.clips * (n_systems + 1)
                else:
                    k = settings.clips
                root = entry["root"]
                songs = C.find_songs(root)
                rng = np.random.default_rng(_seed(settings.seed, test, entry["name"]))
                try:
                    got, left = C.make_clips(songs, k, secs, rng, tmp / "clips", root=root,
                                             target_dbfs=settings.target_dbfs)
                except InvalidInputError as e:
                    where = entry.get("where", str(root))  # a model's songs live in the temporary folder
                    raise InvalidInputError(f"{test} test, system {entry['name']!r}: {e.reason}", where) from None
                for c in got:
                    clips.append({"test": test, "system": entry["name"], **c})
                if left:
                    skipped.setdefault(entry["name"], {}).update(dict(left))
                limited = sum(c["limited"] for c in got)
                log(f"{test}: {entry['name']}: {len(got)} clips of {secs:g} s from {len(songs)} songs"
                    + (f" ({len(left)} song{'s' * (len(left) > 1)} left out)" if left else "")
                    + (f", {limited} peak-limited" if limited else ""))
        for entry in table:
            entry.pop("where", None)
            del entry["root"]
        meta = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": asdict(settings),
            "key": secrets.token_urlsafe(12),
            "systems": table,
            "clips": clips,
            "skipped": {k: sorted(v.items()) for k, v in skipped.items()},
        }
        write_text_atomic(tmp / "study.json", json.dumps(meta, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Study(out)


class Study:
    """A study folder, read: settings, systems, clips."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        f = self.root / "study.json"
        if not f.is_file():
            raise InvalidInputError("not a study folder (no study.json; make one with lakhnes listen setup)",
                                    str(self.root))
        try:
            meta = json.loads(f.read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            self.settings = Settings.from_dict(meta["settings"]).check()
            self.systems = [s["name"] for s in meta["systems"]]
            self.clips = {c["id"]: c for c in meta["clips"]}
            self.key = str(meta["key"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidInputError(f"damaged study.json ({e})", str(f)) from None
        self.meta = meta

    def pools(self, test: str) -> dict[str, list[str]]:
        """system → its clip ids in ``test`` (study order: real, random, then the systems)."""
        out: dict[str, list[str]] = {s: [] for s in self.systems}
        for c in self.clips.values():
            if c["test"] == test:
                out[c["system"]].append(c["id"])
        return {s: ids for s, ids in out.items() if ids}

    def compared(self, test: str) -> list[str]:
        """The systems a test's results are about: Turing: the systems under study; preference:
        the real songs too. The random model is only a control."""
        return [s for s in self.systems if s != RANDOM and (test == "preference" or s != REAL)]

    def clip_path(self, clip_id: str) -> Path:
        if clip_id not in self.clips:
            raise KeyError(clip_id)
        return self.root / "clips" / f"{clip_id}.wav"

    def compose(self, test: str, listener: str, number: int, heard: Mapping[str, int]) -> list[dict]:
        """Batch ``number`` of ``listener`` in ``test`` (seeded by the study's seed, the listener
        and the number), with clip records filled in."""
        s = self.settings
        rng = np.random.default_rng(_seed(s.seed, "batch", test, listener, number))
        pairs = compose_batch(test, self.pools(test), pairs=s.pairs, controls=s.controls, rng=rng, heard=heard)
        for p in pairs:
            for side in "ab":
                c = self.clips[p[f"clip_{side}"]]
                p[f"song_{side}"], p[f"offset_{side}"] = c["song"], c["offset"]
        return pairs


def _turns(items: list, n: int, rng: np.random.Generator) -> list:
    """``n`` items taking turns: the list in a fresh random order each round."""
    out: list = []
    while len(out) < n:
        out += [items[i] for i in rng.permutation(len(items))]
    return out[:n]


def compose_batch(test: str, pools: Mapping[str, list[str]], *, pairs: int = 10, controls: int = 2,
                  rng: np.random.Generator, heard: Mapping[str, int] | None = None) -> list[dict]:
    """The pairs of one batch: dicts with ``control``, ``system_a``, ``system_b``, ``clip_a``,
    ``clip_b`` (see the module's docstring). ``pools``: system → clip ids (``real`` and, with
    controls, ``random`` among them); ``heard``: clip id → how often the listener heard it."""
    heard = heard or {}
    if test not in TESTS:
        raise InvalidInputError(f"unknown test {test!r} (choose from {', '.join(TESTS)})")
    need = [REAL] + ([RANDOM] if controls else [])
    missing = [s for s in need if not pools.get(s)]
    if missing:
        raise InvalidInputError(f"{test} test: no {missing[0]} clips")
    if test == "turing":
        systems = [s for s in pools if s not in (REAL, RANDOM)]
        if not systems:
            raise InvalidInputError("turing test: no system to compare with the real songs")
        plan = [(REAL, s) for s in _turns(systems, pairs - controls, rng)]
    else:
        systems = [s for s in pools if s != RANDOM]
        if len(systems) < 2:
            raise InvalidInputError("preference test: needs two systems (the real songs count as one)")
        plan = _turns(list(combinations(systems, 2)), pairs - controls, rng)
    taken: set[str] = set()

    def draw(system: str) -> str:
        pool = [c for c in pools[system] if c not in taken] or list(pools[system])
        least = min(heard.get(c, 0) for c in pool)
        pool = [c for c in pool if heard.get(c, 0) == least]
        c = pool[int(rng.integers(len(pool)))]
        taken.add(c)
        return c

    out = []
    for k, (a, b) in enumerate(plan + [(REAL, RANDOM)] * controls):
        ca, cb = draw(a), draw(b)
        if rng.random() < 0.5:
            a, b, ca, cb = b, a, cb, ca
        out.append({"control": k >= len(plan), "system_a": a, "system_b": b, "clip_a": ca, "clip_b": cb})
    return [out[i] for i in rng.permutation(len(out))]
