"""The answers of a listening study in SQLite (WAL, ``synchronous=FULL``: an answer is on disk
before the page hears "saved").

Tables: ``listeners``; ``batches`` (a listener's numbered batches of one test, ``finished`` once
every pair has its answer); ``pairs`` (each batch's pairs: systems, clips, songs, offsets, whether
it is a control, and the two opaque tokens the page fetches the clips by); ``answers``, one row per
answer with everything needed to analyse it alone: listener, test, batch and its number, pair,
control, both systems, clips, songs and offsets, the choice (``a``/``b``), the chosen system,
``correct`` (Turing test: the real clip was named human; preference controls: the real clip was
preferred; otherwise empty) and the time (UTC). A batch lives in the database from the moment it is
drawn, so a restarted server hands the listener the same batch, at the first unanswered pair.
``fetched`` records the clip tokens the page has fetched: an answer needs both clips of its pair.

Why Store is long: it holds every SQL statement of a study (listeners, batches, pairs, fetched
clips, answers), so that each transaction and the checks inside it read in one place.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lakhnes.listen.study import RANDOM, REAL

SCHEMA = """
CREATE TABLE IF NOT EXISTS listeners (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    listener TEXT NOT NULL REFERENCES listeners(id),
    test TEXT NOT NULL,
    number INTEGER NOT NULL,
    pairs INTEGER NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    UNIQUE (listener, test, number)
);
CREATE TABLE IF NOT EXISTS pairs (
    batch TEXT NOT NULL REFERENCES batches(id),
    pair INTEGER NOT NULL,
    control INTEGER NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL,
    clip_a TEXT NOT NULL, clip_b TEXT NOT NULL,
    song_a TEXT, song_b TEXT,
    offset_a REAL, offset_b REAL,
    token_a TEXT NOT NULL UNIQUE, token_b TEXT NOT NULL UNIQUE,
    PRIMARY KEY (batch, pair)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    listener TEXT NOT NULL,
    test TEXT NOT NULL,
    batch TEXT NOT NULL,
    batch_number INTEGER NOT NULL,
    pair INTEGER NOT NULL,
    control INTEGER NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL,
    clip_a TEXT NOT NULL, clip_b TEXT NOT NULL,
    song_a TEXT, song_b TEXT,
    offset_a REAL, offset_b REAL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')),
    chosen_system TEXT NOT NULL,
    correct INTEGER,
    answered_at TEXT NOT NULL,
    UNIQUE (batch, pair)
);
CREATE TABLE IF NOT EXISTS fetched (
    token TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
"""
#: the columns of an answer row, in the CSV's order
ANSWER_COLUMNS = ("id", "listener", "test", "batch", "batch_number", "pair", "control", "system_a", "system_b",
                  "clip_a", "clip_b", "song_a", "song_b", "offset_a", "offset_b", "choice", "chosen_system",
                  "correct", "answered_at")
_PAIR_COLUMNS = ("control", "system_a", "system_b", "clip_a", "clip_b", "song_a", "song_b", "offset_a", "offset_b")


class NotFound(LookupError):
    """No such listener, batch or pair."""


class Conflict(ValueError):
    """The pair already has a different answer."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def correct_of(test: str, control: bool, chosen: str) -> int | None:
    """Turing: 1 when the real clip was named human; preference controls: 1 when the real clip was
    preferred over the random one; other preference pairs: None."""
    if test == "turing" or control:
        return int(chosen == REAL)
    return None


@contextmanager
def damaged(path):
    """SQLite's errors on a damaged database as one ``InvalidInputError`` line naming ``path``."""
    try:
        yield
    except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed", ...
        from lakhnes.errors import InvalidInputError

        raise InvalidInputError(f"damaged answers database ({e}); move it aside to start a new one",
                                str(path)) from None


class Store:
    """The answers database of one study (``answers.sqlite``); safe to share between threads. A
    damaged database is an ``InvalidInputError`` naming the file (one line), never a traceback."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()  # one writer at a time inside this process
        with damaged(self.path), self._connect() as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OSError(f"{self.path}: SQLite could not switch to WAL (journal mode {mode})")
            db.executescript(SCHEMA)
            lacks = set(ANSWER_COLUMNS) - {r[1] for r in db.execute("PRAGMA table_info(answers)")}
            if lacks:
                raise sqlite3.DatabaseError(f"its answers table lacks {', '.join(sorted(lacks))}")

    @contextmanager
    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self):
        """A connection inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------------ listeners and batches
    def new_listener(self) -> str:
        lid = secrets.token_hex(8)
        with self._write() as db:
            db.execute("INSERT INTO listeners VALUES (?, ?)", (lid, now()))
        return lid

    def has_listener(self, listener: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM listeners WHERE id = ?", (listener,)).fetchone() is not None

    def batches_done(self, listener: str, test: str) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM batches WHERE listener = ? AND test = ? AND finished IS NOT NULL",
                              (listener, test)).fetchone()[0]

    def open_batch(self, listener: str, test: str) -> dict | None:
        """The listener's unfinished batch of ``test`` (see :meth:`batch`), or None."""
        with self._connect() as db:
            row = db.execute("SELECT id FROM batches WHERE listener = ? AND test = ? AND finished IS NULL",
                             (listener, test)).fetchone()
        return self.batch(row["id"]) if row else None

    def start_batch(self, listener: str, test: str,
                    compose: Callable[[int, dict[str, int]], list[dict]]) -> dict:
        """The listener's unfinished batch of ``test``; else a new one: ``compose(number, heard)``
        draws its pairs (``heard``: clip id → times in the listener's earlier batches of the test)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM listeners WHERE id = ?", (listener,)).fetchone() is None:
                raise NotFound("no such listener")
            row = db.execute("SELECT id FROM batches WHERE listener = ? AND test = ? AND finished IS NULL",
                             (listener, test)).fetchone()
            if row is None:
                number = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM batches WHERE listener = ? AND test = ?",
                                    (listener, test)).fetchone()[0]
                heard = Counter()
                for r in db.execute("SELECT p.clip_a, p.clip_b FROM pairs p JOIN batches b ON p.batch = b.id "
                                    "WHERE b.listener = ? AND b.test = ?", (listener, test)):
                    heard.update((r["clip_a"], r["clip_b"]))
                pairs = compose(number, dict(heard))
                bid = secrets.token_hex(8)
                db.execute("INSERT INTO batches (id, listener, test, number, pairs, created) VALUES (?, ?, ?, ?, ?, ?)",
                           (bid, listener, test, number, len(pairs), now()))
                for k, p in enumerate(pairs):
                    db.execute(f"INSERT INTO pairs (batch, pair, {', '.join(_PAIR_COLUMNS)}, token_a, token_b) "
                               f"VALUES (?, ?, {', '.join('?' * len(_PAIR_COLUMNS))}, ?, ?)",
                               (bid, k, *(p.get(c) for c in _PAIR_COLUMNS), secrets.token_hex(12),
                                secrets.token_hex(12)))
            else:
                bid = row["id"]
        return self.batch(bid)

    def batch(self, batch_id: str) -> dict:
        """A batch: ``id``, ``listener``, ``test``, ``number``, ``finished`` and its ``pairs``
        (each with its clip tokens and whether it is ``answered``); ``next``: the first
        unanswered pair (None when finished)."""
        with self._connect() as db:
            b = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if b is None:
                raise NotFound("no such batch")
            done = {r[0] for r in db.execute("SELECT pair FROM answers WHERE batch = ?", (batch_id,))}
            pairs = [dict(r) | {"answered": r["pair"] in done}
                     for r in db.execute("SELECT * FROM pairs WHERE batch = ? ORDER BY pair", (batch_id,))]
        nxt = next((p["pair"] for p in pairs if not p["answered"]), None)
        return {**dict(b), "pairs": pairs, "next": nxt}

    def clip_of(self, token: str) -> str | None:
        """The clip id behind one of a pair's tokens."""
        with self._connect() as db:
            r = db.execute("SELECT clip_a, clip_b, token_a FROM pairs WHERE token_a = ? OR token_b = ?",
                           (token, token)).fetchone()
        if r is None:
            return None
        return r["clip_a"] if r["token_a"] == token else r["clip_b"]

    # ------------------------------------------------------------------ answers
    def answer(self, listener: str, batch_id: str, pair: int, choice: str, heard: bool = False) -> dict:
        """Record the listener's ``choice`` (``a`` or ``b``) for a pair of their batch; answering
        again with the same choice changes nothing, with another raises :class:`Conflict`. With
        ``heard``, a new answer needs both clips of the pair fetched (:meth:`fetch`; else :class:`Conflict`).
        Returns ``next`` (the first unanswered pair or None), ``finished`` and ``batches_done``."""
        if choice not in ("a", "b"):
            raise ValueError(f"choice must be 'a' or 'b', not {choice!r}")
        with self._write() as db:
            b = db.execute("SELECT * FROM batches WHERE id = ? AND listener = ?", (batch_id, listener)).fetchone()
            if b is None:
                raise NotFound("no such batch for this listener")
            p = db.execute("SELECT * FROM pairs WHERE batch = ? AND pair = ?", (batch_id, pair)).fetchone()
            if p is None:
                raise NotFound(f"no pair {pair} in this batch")
            old = db.execute("SELECT choice FROM answers WHERE batch = ? AND pair = ?", (batch_id, pair)).fetchone()
            if old is not None and old["choice"] != choice:
                raise Conflict(f"pair {pair} is already answered")
            if old is None and heard and db.execute("SELECT COUNT(*) FROM fetched WHERE token IN (?, ?)",
                                                    (p["token_a"], p["token_b"])).fetchone()[0] < 2:
                raise Conflict(f"play both clips of pair {pair} first")
            if old is None:
                chosen = p[f"system_{choice}"]
                row = {"listener": listener, "test": b["test"], "batch": batch_id, "batch_number": b["number"],
                       "pair": pair, **{c: p[c] for c in _PAIR_COLUMNS}, "choice": choice, "chosen_system": chosen,
                       "correct": correct_of(b["test"], bool(p["control"]), chosen), "answered_at": now()}
                db.execute(f"INSERT INTO answers ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
            answered = {r[0] for r in db.execute("SELECT pair FROM answers WHERE batch = ?", (batch_id,))}
            nxt = next((k for k in range(b["pairs"]) if k not in answered), None)
            if nxt is None and b["finished"] is None:
                db.execute("UPDATE batches SET finished = ? WHERE id = ?", (now(), batch_id))
            done = db.execute("SELECT COUNT(*) FROM batches WHERE listener = ? AND test = ? AND finished IS NOT NULL",
                              (listener, b["test"])).fetchone()[0]
        return {"next": nxt, "finished": nxt is None, "batches_done": done}

    def fetch(self, token: str) -> str | None:
        """:meth:`clip_of`, and the token is recorded as fetched (see :meth:`answer`)."""
        clip = self.clip_of(token)
        if clip is not None:
            with self._write() as db:
                db.execute("INSERT OR IGNORE INTO fetched VALUES (?, ?)", (token, now()))
        return clip

    def answers(self, test: str | None = None) -> list[dict]:
        """Every answer row (``ANSWER_COLUMNS``), oldest first; of one test if given."""
        with damaged(self.path), self._connect() as db:
            q = "SELECT * FROM answers" + (" WHERE test = ?" if test else "") + " ORDER BY id"
            return [dict(r) for r in db.execute(q, (test,) if test else ())]


def answers_csv(rows: Iterable[dict], counted: set[int] | None = None) -> str:
    """The answers as CSV (``ANSWER_COLUMNS``, then ``counted``: 1 when the answer counts in the
    results, its listener having passed every control)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow((*ANSWER_COLUMNS, "counted"))
    for r in rows:
        w.writerow((*("" if r[c] is None else csv_cell(r[c]) for c in ANSWER_COLUMNS),
                    "" if counted is None else int(r["id"] in counted)))
    return buf.getvalue()


def csv_cell(value):
    """A value safe in a spreadsheet: text that a spreadsheet would run as a formula (starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, e.g. a song named ``=HYPERLINK(...)``)
    gets a leading ``'`` (OWASP's advice); numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


__all__ = ["Store", "NotFound", "Conflict", "answers_csv", "ANSWER_COLUMNS", "RANDOM", "REAL"]
