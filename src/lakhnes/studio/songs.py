"""The studio's song folder: each song's files, its notes as JSON, history, muted renders.

Layout: ``OUT/songs/<id>/`` holds ``song.mid``, ``song.tx1.txt``, ``song.wav``, ``song.vgm``
(NES APU register writes, VGM 1.61), ``song.famitracker.txt`` (FamiTracker text), ``song.json``
(metadata + notes) and cached muted renders ``mute-<VOICES>.wav``. A song folder is written
under a hidden temporary name and renamed when complete. Files are served only by
:meth:`SongStore.file_path`, which checks ids and names against strict patterns and that the
resolved path lies inside the folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from lakhnes.core.score import SAMPLE_RATE, VOICES, NesScore
from lakhnes.errors import InvalidInputError
from lakhnes.formats.midi import read_midi
from lakhnes.studio import MAX_SONGS

ID_RE = re.compile(r"^[0-9a-f]{12}$")
#: when this process started (its first import of the studio): older temporary folders are a killed one's
_STARTED = time.time()
#: every file name a song folder may hold
NAME_RE = re.compile(r"^(song\.(wav|mid|tx1\.txt|vgm|famitracker\.txt|json)|mute-(P1|P2|TR|NO)(-(P1|P2|TR|NO)){0,3}\.wav)$")
DOWNLOADS = {"wav": "song.wav", "mid": "song.mid", "tx1": "song.tx1.txt", "vgm": "song.vgm",
             "ftm": "song.famitracker.txt"}
#: downloads made from ``song.mid`` (when the song is written; on the first request for older songs)
EXPORTS = ("song.vgm", "song.famitracker.txt")


def _export(store: SongStore, song_id: str, name: str) -> None:
    """Write the download ``name`` (one of ``EXPORTS``) from ``song.mid`` if the song lacks it
    (songs written before it was offered). ``KeyError``: no such song."""
    from lakhnes.formats.files import save

    mid = store.file_path(song_id, "song.mid")
    with store._render_lock:
        if not mid.with_name(name).exists():
            save(read_midi(mid), mid.with_name(name))


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def notes_json(score: NesScore) -> dict:
    """The score's notes for the page: per voice, columns in seconds (4 decimals) and pitches."""
    voices = {}
    for v in VOICES:
        n = score.notes[v]
        voices[v] = {
            "start": np.round(n["start"] / SAMPLE_RATE, 4).tolist(),
            "end": np.round(n["end"] / SAMPLE_RATE, 4).tolist(),
            "pitch": n["pitch"].astype(int).tolist(),
        }
    return {"seconds": round(score.end / SAMPLE_RATE, 4), "voices": voices}


def mute_name(mute) -> str:
    """The cached render's file name for a set of muted voices (``song.wav`` when none)."""
    mute = set(mute)
    bad = sorted(mute - set(VOICES))
    if bad:
        raise InvalidInputError(f"unknown voice {bad[0]!r} (voices are {', '.join(VOICES)})")
    if not mute:
        return "song.wav"
    if mute == set(VOICES):
        raise InvalidInputError("cannot mute all four voices")
    return "mute-" + "-".join(v for v in VOICES if v in mute) + ".wav"


class SongStore:
    """The songs under ``out_dir/songs``; thread-safe for one process. At most ``max_songs`` are
    kept: adding one deletes the oldest beyond that (None: no cap)."""

    def __init__(self, out_dir: str | os.PathLike, max_songs: int | None = MAX_SONGS):
        if max_songs is not None and max_songs < 1:
            raise InvalidInputError(f"max_songs must be at least 1, not {max_songs}")
        self.root = Path(out_dir).resolve() / "songs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_songs = max_songs
        self._render_lock = threading.Lock()
        self.clean_temporaries()

    def clean_temporaries(self) -> list[str]:
        """Remove what a killed studio left: song folders still under their temporary name
        (``.tmp-<id>``) older than this process, and stale ``atomic_path`` files (dead pid) in the
        song folders. Returns the removed names."""
        from lakhnes.io import clean_stale_temporaries

        gone = []
        for d in self.root.iterdir():
            try:
                if d.name.startswith(".tmp-") and d.is_dir() and d.stat().st_mtime < _STARTED:
                    shutil.rmtree(d, ignore_errors=True)
                    gone.append(d.name)
                elif ID_RE.fullmatch(d.name) and d.is_dir():
                    gone += [f"{d.name}/{p.name}" for p in clean_stale_temporaries(d)]
            except OSError:
                continue
        return gone

    # ------------------------------------------------------------------ writing
    def add(self, score: NesScore, meta: dict, highlight: dict | None = None) -> dict:
        """Write a new song (MIDI, TX1, WAV, VGM, FamiTracker text, JSON) atomically; return its metadata."""
        from lakhnes import synth
        from lakhnes.core.tx1 import score_to_text
        from lakhnes.formats.files import save
        from lakhnes.formats.midi import write_midi
        from lakhnes.io import write_text_atomic

        song_id = new_id()
        tmp = self.root / f".tmp-{song_id}"
        tmp.mkdir()
        try:
            write_midi(score, tmp / "song.mid")
            write_text_atomic(tmp / "song.tx1.txt", score_to_text(score))
            for name in EXPORTS:
                save(score, tmp / name)
            synth.render_wav(score, tmp / "song.wav", peak_db=synth.PEAK_DB)  # normalised, as the CLI writes
            info = {
                "id": song_id,
                "created": time.time(),
                "seconds": round(score.end / SAMPLE_RATE, 3),
                "num_notes": score.num_notes,
                **meta,
                "highlight": highlight or {"span": None, "voices": []},
                "notes": notes_json(score),
            }
            (tmp / "song.json").write_text(json.dumps(info))
            os.replace(tmp, self.root / song_id)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.prune(keep=song_id)
        return self.public(info)

    def prune(self, keep: str | None = None) -> list[str]:
        """Delete the oldest songs beyond ``max_songs`` (never ``keep``); return their ids."""
        if self.max_songs is None:
            return []
        songs = []
        for d in self.root.iterdir():
            if ID_RE.fullmatch(d.name) and d.is_dir():
                try:
                    created = float(json.loads((d / "song.json").read_text())["created"])
                except (OSError, ValueError, KeyError, TypeError):
                    created = d.stat().st_mtime  # a damaged folder: its age on disk
                songs.append((created, d.name))
        songs.sort(reverse=True)
        gone = [sid for _, sid in songs[self.max_songs :] if sid != keep]
        with self._render_lock:  # not while a render writes into one of them
            for sid in gone:
                shutil.rmtree(self.root / sid, ignore_errors=True)
        return gone

    def render(self, song_id: str, mute) -> str:
        """Render the song with ``mute`` voices silenced (cached); return the file name."""
        from lakhnes import synth

        name = mute_name(mute)
        path = self.file_path(song_id, "song.mid").with_name(name)
        with self._render_lock:
            if not path.exists():
                score = read_midi(path.with_name("song.mid"))
                synth.render_wav(score, path, mute=tuple(mute), peak_db=synth.PEAK_DB)  # the full song's gain
        return name

    # ------------------------------------------------------------------ reading
    def song_dir(self, song_id: str) -> Path:
        if not isinstance(song_id, str) or not ID_RE.fullmatch(song_id):
            raise KeyError(song_id)
        d = self.root / song_id
        if not d.is_dir() or d.resolve().parent != self.root:
            raise KeyError(song_id)
        return d

    def file_path(self, song_id: str, name: str) -> Path:
        """The path of one of a song's files; ``KeyError`` unless it exists inside the folder. The
        ``EXPORTS`` an older song lacks are written from its ``song.mid`` first."""
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise KeyError(name)
        if name in EXPORTS and not (self.song_dir(song_id) / name).exists():
            _export(self, song_id, name)
        d = self.song_dir(song_id)
        p = (d / name).resolve()
        if p.parent != d.resolve() or not p.is_relative_to(self.root) or not p.is_file():
            raise KeyError(name)
        return p

    def get(self, song_id: str, notes: bool = True) -> dict:
        info = json.loads(self.file_path(song_id, "song.json").read_text())
        return self.public(info, notes)

    def list(self) -> list[dict]:
        """Every song, newest first, without notes."""
        out = []
        for d in self.root.iterdir():
            if ID_RE.fullmatch(d.name):
                try:
                    out.append(self.get(d.name, notes=False))
                except (KeyError, OSError, ValueError):
                    continue  # a damaged folder is left out of the history
        return sorted(out, key=lambda s: s["created"], reverse=True)

    @staticmethod
    def public(info: dict, notes: bool = True) -> dict:
        """Metadata as the API returns it: with file URLs, and the notes when asked."""
        sid = info["id"]
        out = {k: v for k, v in info.items() if notes or k != "notes"}
        out["files"] = {k: f"/api/files/{sid}/{name}" for k, name in DOWNLOADS.items()}
        return out
