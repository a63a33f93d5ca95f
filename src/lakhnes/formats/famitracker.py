"""FamiTracker text export 0.4.2 (``.famitracker.txt``): written for FamiTracker, 0CC-FamiTracker,
Dn-FamiTracker and FamiStudio to import, and read back.

One song (track) on the 2A03's channels (pulse 1, pulse 2, triangle, noise, and an empty DPCM
column). The row length is the song's pulse: ``speed`` frames a row at tempo 150 (one 60 Hz frame
per speed unit), the largest of 1-12 frames on which nearly every note starts (else one row a frame).
Each note of at least a frame is a note cell on the row nearest its start (``---`` cuts it where it ends,
unless the next note starts there); the instrument of a cell carries the pulse duty or noise mode
(one instrument per duty value used, a one-step duty macro), the volume column the note's volume
and, on later rows, each change of it (CC11); a duty change inside a note is a ``V0x`` effect;
``C00`` in the DPCM column halts the song where it ends. Triangle notes are written an octave up (FamiTracker's triangle sounds an octave below the note
name). Notes starting inside one row keep only the first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from lakhnes.core.score import CTRL_DTYPE, MAX_SAMPLES, VOICES, NesScore, make_notes, too_long
from lakhnes.errors import InvalidInputError

FRAME = 735  # samples in a 60 Hz frame
NAMES = ("C-", "C#", "D-", "D#", "E-", "F-", "F#", "G-", "G#", "A-", "A#", "B-")
MAX_ROWS, MAX_ORDERS = 256, 128
MAX_FT_BYTES = 32 * 1024 * 1024
_EMPTY = "... .. . ..."


def row_frames(score: NesScore, share: float = 0.95) -> int:
    """Frames a row: the largest of 1-12 on whose multiples at least ``share`` of the note starts fall."""
    starts = np.concatenate([score.notes[v]["start"] for v in VOICES])
    if not len(starts):
        return 1
    frames = np.round((starts - np.median(starts % FRAME)) / FRAME).astype(np.int64)
    for k in range(12, 1, -1):
        if np.mean(frames % k == 0) >= share:
            return k
    return 1


def _note_name(v: str, pitch: int) -> str | None:
    if v == "NO":
        return f"{pitch - 1:X}-#"
    p = pitch + 12 if v == "TR" else pitch
    while p > 107:  # B-7: the top of FamiTracker's range
        p -= 12
    return f"{NAMES[p % 12]}{p // 12 - 1}" if p >= 12 else None


def _last(times: np.ndarray, values: np.ndarray, at: int, default: int) -> int:
    i = int(np.searchsorted(times, at, side="right")) - 1
    return int(values[i]) if i >= 0 else default


def _channel(score: NesScore, v: str, row_len: int, n_rows: int, duty: int | None) -> list[str]:
    from lakhnes.synth import DEFAULT_DUTY

    cells = [_EMPTY] * n_rows
    notes = score.notes[v]
    vol, tim = score.volume[v], score.timbre[v]
    pulse = v in ("P1", "P2")
    default_tim = (DEFAULT_DUTY if duty is None else duty) if pulse else 0
    if pulse and duty is not None:
        tim = tim[:0]
    ev_t = np.concatenate([notes["start"], vol["time"]])
    ev_v = np.concatenate([notes["velocity"], vol["value"]])
    order = np.argsort(ev_t, kind="stable")
    ev_t, ev_v = ev_t[order], ev_v[order]
    last_row = -1
    notes = notes[notes["end"] - notes["start"] >= FRAME]  # shorter than a frame: a driver's glitch
    rows = np.round(notes["start"] / row_len).astype(np.int64)
    for k in range(len(notes)):
        r = int(rows[k])
        if r <= last_row or r >= n_rows:
            continue
        name = _note_name(v, int(notes["pitch"][k]))
        if name is None:
            continue
        end = int(round(notes["end"][k] / row_len))
        end = max(end, r + 1)
        nxt = int(rows[k + 1]) if k + 1 < len(notes) else n_rows + 1
        inst = _last(tim["time"], tim["value"], int(notes["start"][k]), default_tim) & 3
        volume = min(15, max(0, int(notes["velocity"][k])))
        cells[r] = f"{name} {inst:02X} {'.' if v == 'TR' else f'{volume:X}'} ..."
        last_vol, last_inst = volume, inst
        for q in range(r + 1, min(end, nxt, n_rows)):  # changes inside the note, row by row
            t = q * row_len
            vq = min(15, max(0, _last(ev_t, ev_v, t, volume)))
            iq = _last(tim["time"], tim["value"], t, default_tim) & 3
            if (v != "TR" and vq != last_vol) or (pulse and iq != last_inst):
                vc = f"{vq:X}" if v != "TR" and vq != last_vol else "."
                eff = f"V0{iq}" if pulse and iq != last_inst else "..."
                cells[q] = f"... .. {vc} {eff}"
                last_vol, last_inst = vq, iq
        if end < nxt and end < n_rows:
            cells[end] = "--- .. . ..."
        last_row = r
    return cells


def famitracker_text(score: NesScore, duty: int | None = None, title: str = "") -> str:
    """The score as FamiTracker text export 0.4.2 (see the module notes)."""
    k = row_frames(score)
    row_len = k * FRAME
    end = max([int(score.end)] + [int(score.notes[v]["end"].max()) for v in VOICES if len(score.notes[v])])
    n_rows = max(1, -(-end // row_len))
    plen = 64 if n_rows <= 64 * MAX_ORDERS else MAX_ROWS
    n_orders = -(-n_rows // plen)
    if n_orders > MAX_ORDERS:
        raise InvalidInputError(f"song too long for FamiTracker ({n_orders} patterns of {plen} rows; the limit is "
                                f"{MAX_ORDERS})")
    chans = [_channel(score, v, row_len, n_orders * plen, duty) for v in VOICES]
    if n_rows < n_orders * plen:  # C00 (halt) on the row after the song's end, in the DPCM column
        chans.append([_EMPTY] * n_rows + ["... .. . C00"] + [_EMPTY] * (n_orders * plen - n_rows - 1))
    used = sorted({int(c[4:6], 16) for ch in chans for c in ch if c[4:6] != ".."} | {0})
    title = (title or score.name).replace('"', "'")
    out = ["# FamiTracker text export 0.4.2", "", "# Song information", f'TITLE           "{title}"',
           'AUTHOR          "lakhnes"', 'COPYRIGHT       ""', "", "# Song comment", 'COMMENT ""', "",
           "# Global settings", "MACHINE         0", "FRAMERATE       0", "EXPANSION       0", "VIBRATO         1",
           "SPLIT           32", "", "# Macros"]
    out += [f"MACRO{4:8d}{d:4d}  -1  -1   0 : {d}" for d in used]
    out += ["", "# DPCM samples", "", "# Instruments"]
    out += [f'INST2A03{d:4d}    -1  -1  -1  -1 {d:3d} "Duty {d}"' for d in used]
    out += ["", "# Tracks", "", f'TRACK {plen:3d} {k:3d} 150 "{title}"', "COLUMNS : 1 1 1 1 1", ""]
    patterns: list[list[int]] = [[] for _ in range(5)]
    blocks: list[str] = []
    seen: list[dict] = [{} for _ in range(5)]
    for o in range(n_orders):
        for c in range(5):
            rows = tuple(chans[c][o * plen:(o + 1) * plen]) if c < len(chans) else (_EMPTY,) * plen
            patterns[c].append(seen[c].setdefault(rows, len(seen[c])))
    for o in range(n_orders):
        out.append(f"ORDER {o:02X} : " + " ".join(f"{patterns[c][o]:02X}" for c in range(5)))
    out.append("")
    n_pat = max(len(s) for s in seen)
    for p in range(n_pat):
        blocks.append(f"PATTERN {p:02X}")
        cols = []
        for c in range(5):
            found = next((rows for rows, i in seen[c].items() if i == p), None)
            cols.append(found or (_EMPTY,) * plen)
        for r in range(plen):
            blocks.append(f"ROW {r:02X} : " + " : ".join(cols[c][r] for c in range(5)))
        blocks.append("")
    return "\n".join(out + blocks) + "\n# End of export\n"


def write_famitracker(score: NesScore, path: str | os.PathLike, duty: int | None = None) -> None:
    """Write FamiTracker text export 0.4.2 to ``path`` atomically."""
    from lakhnes.io import write_text_atomic

    try:
        text = famitracker_text(score, duty=duty, title=score.name or Path(path).name.split(".")[0])
    except InvalidInputError as e:
        raise e.with_path(path) from None
    write_text_atomic(path, text)


_NOTE = re.compile(r"^([A-G][-#])(\d)$")


def _pitch(v: str, note: str) -> int | None:
    if v == "NO":
        if len(note) == 3 and note.endswith("-#"):
            return int(note[0], 16) + 1
        return None
    m = _NOTE.match(note)
    if not m or m.group(1) not in NAMES:
        return None
    p = NAMES.index(m.group(1)) + 12 * (int(m.group(2)) + 1)
    return p - 12 if v == "TR" else p


def read_famitracker(src: str | os.PathLike, name: str | None = None) -> NesScore:
    """A score from FamiTracker text export (the first track's 2A03 channels): note cells start
    notes, ``---``/``===`` end them; the volume column is velocity/CC11, the instrument's duty macro
    (or ``V0x``) the pulse duty / noise mode. Rows last ``speed * 150 / tempo`` frames."""
    path = str(src)
    try:
        if os.path.getsize(path) > MAX_FT_BYTES:
            raise InvalidInputError("file too large", path)
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InvalidInputError(f"cannot read file ({e.strerror or e})", path) from None
    try:
        return _parse(text, name if name is not None else Path(path).name.split(".")[0])
    except InvalidInputError as e:
        raise e.with_path(path) from None


def _parse(text: str, name: str) -> NesScore:
    if not text.lstrip().startswith("# FamiTracker text export"):
        raise InvalidInputError("not a FamiTracker text export (no '# FamiTracker text export' header)")
    macros, inst_duty, orders, pats = {}, {}, [], {}
    track = None
    cur = None
    for line in text.splitlines():
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        try:
            if f[0] == "MACRO" and f[1] == "4":
                macros[int(f[2])] = int(line.split(":")[1].split()[0])
            elif f[0] == "INST2A03":
                inst_duty[int(f[1])] = int(f[6])
            elif f[0] == "TRACK":
                if track is not None:
                    break  # the first song only
                track = (int(f[1]), int(f[2]), int(f[3]))
            elif f[0] == "ORDER":
                orders.append([int(x, 16) for x in line.split(":")[1].split()])
            elif f[0] == "PATTERN":
                cur = pats.setdefault(int(f[1], 16), {})
            elif f[0] == "ROW" and cur is not None:
                cur[int(f[1], 16)] = [c.split() for c in line.split(":")[1:]]
        except (IndexError, ValueError):
            raise InvalidInputError(f"malformed line: {line.strip()[:60]!r}") from None
    if track is None or not orders:
        raise InvalidInputError("no track with an order list")
    plen, speed, tempo = track
    if not (1 <= plen <= 256 and 1 <= speed <= 31 and 32 <= tempo <= 255):
        raise InvalidInputError(f"bad TRACK settings (rows {plen}, speed {speed}, tempo {tempo})")
    row_len = speed * 150 * FRAME / tempo
    n_rows = len(orders) * plen
    if n_rows * row_len > MAX_SAMPLES:
        raise InvalidInputError(too_long(int(n_rows * row_len)))
    halt = next((o * plen + r for o, order in enumerate(orders) for r in range(plen)
                 if any("C00" in cell for cell in pats.get(order[4] if len(order) > 4 else -1, {}).get(r, []))),
                n_rows)
    score = NesScore(name=name, end=int(round(halt * row_len)))
    for c, v in enumerate(VOICES):
        notes, vol, tim = [], [], []
        duty_now = None
        for o, order in enumerate(orders):
            pat = pats.get(order[c] if c < len(order) else -1, {})
            for r in range(plen):
                cell = pat.get(r)
                if not cell or c >= len(cell) or len(cell[c]) < 3:
                    continue
                note, inst, volc, *effs = cell[c]
                t = int(round((o * plen + r) * row_len))
                if t >= score.end:
                    break
                if note in ("---", "===") and notes and notes[-1][1] is None:
                    notes[-1][1] = t
                elif note not in ("...", "---", "==="):
                    p = _pitch(v, note)
                    if p is None:
                        raise InvalidInputError(f"bad note {note!r} in pattern {order[c]:02X} row {r:02X}")
                    if notes and notes[-1][1] is None:
                        notes[-1][1] = t
                    velocity = int(volc, 16) if volc != "." else (notes[-1][3] if notes else 15)
                    notes.append([t, None, p, 1 if v == "TR" else velocity])
                    if inst != "..":
                        d = macros.get(inst_duty.get(int(inst, 16), -1), None)
                        if d is not None and d != duty_now and v != "TR":
                            tim.append((t, d & (3 if v != "NO" else 1)))
                            duty_now = d
                elif volc != "." and v != "TR" and notes and notes[-1][1] is None:
                    vol.append((t, int(volc, 16)))
                for e in effs:
                    if e[:2] == "V0" and v != "TR" and e[2] in "0123":
                        tim.append((t, int(e[2]) & (3 if v != "NO" else 1)))
                        duty_now = int(e[2])
        if notes and notes[-1][1] is None:
            notes[-1][1] = score.end
        arr = np.array([tuple(n) for n in notes], dtype=[("s", "<i8"), ("e", "<i8"), ("p", "<i2"), ("v", "<i2")])
        score.notes[v] = make_notes(arr["s"], arr["e"], arr["p"], arr["v"])
        score.volume[v] = np.array(vol, dtype=CTRL_DTYPE)
        score.timbre[v] = np.array(tim, dtype=CTRL_DTYPE)
    if score.is_empty:
        raise InvalidInputError("empty song: no notes and no length")
    score.check()
    return score
