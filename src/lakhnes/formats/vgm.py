"""VGM files with the NES APU: read rips as NES-MDB did, write songs any VGM player plays.

Reading (``.vgm``, gzip-compressed ``.vgz``, or any file starting with ``Vgm ``): the command
stream is parsed into timed APU register writes (``0xB4 aa dd``; waits ``0x61``/``0x62``/``0x63``/
``0x7n``; end ``0x66``), and :mod:`lakhnes.formats.apu_trace` turns them into a score the way
NES-MDB made its MIDI. Left out, and listed in :attr:`VgmInfo.left_out`: DPCM (``$4010``-``$4013``,
sample data blocks), the Famicom Disk System's registers, a second APU, and every other chip's
commands. A file with no NES APU clock in its header is not an NES VGM and is refused.

Writing: see :mod:`lakhnes.formats.apu_driver` (the register writes, once per frame) and :func:`vgm_bytes`.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lakhnes.core.score import MAX_SAMPLES, SAMPLE_RATE, NesScore, too_long
from lakhnes.errors import InvalidInputError

MAGIC = b"Vgm "
NTSC_CLOCK = 1789772
#: Largest VGM read (after gunzip); an hour of NES music is a few MB.
MAX_VGM_BYTES = 64 * 1024 * 1024
#: Operand bytes of each VGM command (other than waits, end and data blocks), by the VGM 1.71 spec.
_OPERANDS = {0x4F: 1, 0x50: 1, 0x68: 11, 0x90: 4, 0x91: 4, 0x92: 5, 0x93: 10, 0x94: 1, 0x95: 4}
for _c in range(0x30, 0x40):
    _OPERANDS[_c] = 1
for _c in list(range(0x40, 0x4F)) + list(range(0x51, 0x60)) + list(range(0xA0, 0xC0)):
    _OPERANDS.setdefault(_c, 2)
for _c in range(0xC0, 0xE0):
    _OPERANDS[_c] = 3
for _c in range(0xE0, 0x100):
    _OPERANDS[_c] = 4

#: Header offsets of the other chips' clocks (a nonzero one: the file also plays another chip).
_CLOCKS = (0x0C, 0x10, 0x2C, 0x30, 0x38, *range(0x40, 0x78, 4), 0x80, 0x88, 0x8C, 0x90,
           *range(0x98, 0xD0, 4), *range(0xD4, 0xE0, 4))


@dataclass
class VgmInfo:
    """What a VGM file held besides the 2A03's four voices (for a batch's summary)."""

    clock: int = NTSC_CLOCK
    version: int = 0x161
    title: str = ""
    left_out: dict[str, int] = field(default_factory=dict)  # what -> count of writes/commands

    def leave_out(self, what: str, n: int = 1) -> None:
        self.left_out[what] = self.left_out.get(what, 0) + n


def unpack(data: bytes, path: str | None = None) -> bytes:
    """The VGM bytes of a ``.vgm`` or gzip-compressed ``.vgz`` file's content."""
    if data[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(data, MAX_VGM_BYTES + 1)
        except zlib.error as e:
            raise InvalidInputError(f"corrupt gzip data in VGZ file ({e})", path) from None
        if len(data) > MAX_VGM_BYTES:
            raise InvalidInputError(f"VGM too large (over {MAX_VGM_BYTES >> 20} MB uncompressed)", path)
    if data[:4] != MAGIC:
        raise InvalidInputError("not a VGM file (no 'Vgm ' header)", path)
    return data


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0] if at + 4 <= len(data) else 0


def parse(data: bytes, path: str | None = None):
    """``(samples, regs, vals, nsamps, info)``: the NES APU writes of VGM bytes (``regs`` offsets
    from $4000, 0x00-0x17), the song's length in samples, and what was left out."""
    data = unpack(data, path)
    if len(data) < 0x40:
        raise InvalidInputError("corrupt VGM (header cut short)", path)
    eof = 4 + _u32(data, 0x04)
    if eof > len(data):
        raise InvalidInputError(f"corrupt VGM (cut short: the header says {eof} bytes, the file has {len(data)})",
                                path)
    version = _u32(data, 0x08)
    info = VgmInfo(version=version)
    start = 0x40
    if version >= 0x150 and _u32(data, 0x34):
        start = 0x34 + _u32(data, 0x34)
    clock = _u32(data, 0x84) if version >= 0x161 and start > 0x84 else 0
    if clock & 0x3FFFFFFF == 0:
        raise InvalidInputError("not an NES VGM (no NES APU clock in the header; another chip's music)", path)
    if clock & 0x80000000:
        info.leave_out("Famicom Disk System")
    if clock & 0x40000000:
        info.leave_out("second NES APU")
    info.clock = clock & 0x3FFFFFFF
    if not 1_000_000 <= info.clock <= 3_000_000:
        raise InvalidInputError(f"corrupt VGM header (NES APU clock {info.clock} Hz)", path)
    if any(_u32(data, off) for off in _CLOCKS if off + 4 <= start):
        info.leave_out("other chips")
    gd3 = _u32(data, 0x14)
    if gd3:
        info.title = _gd3_title(data, 0x14 + gd3)
    if start >= len(data):
        raise InvalidInputError("corrupt VGM (data offset past the end of the file)", path)
    samples, regs, vals, nsamps = _commands(data, start, info, path)
    if nsamps > MAX_SAMPLES:
        raise InvalidInputError(too_long(nsamps), path)
    return samples, regs, vals, nsamps, info


def _commands(data: bytes, i: int, info: VgmInfo, path):
    samples, regs, vals = [], [], []
    t, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0xB4:
            if i + 3 > n:
                raise InvalidInputError(f"corrupt VGM (command cut short at byte {i})", path)
            aa, dd = data[i + 1], data[i + 2]
            i += 3
            if aa & 0x80:
                info.leave_out("second NES APU")
            elif aa <= 0x17:
                if 0x10 <= aa <= 0x13:
                    info.leave_out("DPCM")
                elif aa == 0x15 and dd & 0x10:
                    info.leave_out("DPCM")
                samples.append(t)
                regs.append(aa)
                vals.append(dd)
            elif aa >= 0x20:
                info.leave_out("Famicom Disk System")
            continue
        if 0x70 <= c <= 0x7F:
            t += (c & 15) + 1
            i += 1
        elif c == 0x61:
            if i + 3 > n:
                raise InvalidInputError(f"corrupt VGM (wait cut short at byte {i})", path)
            t += data[i + 1] | (data[i + 2] << 8)
            i += 3
        elif c == 0x62:
            t, i = t + 735, i + 1
        elif c == 0x63:
            t, i = t + 882, i + 1
        elif c == 0x66:
            break
        elif c == 0x67:
            if i + 7 > n or data[i + 1] != 0x66:
                raise InvalidInputError(f"corrupt VGM (bad data block at byte {i})", path)
            size = _u32(data, i + 3) & 0x7FFFFFFF
            info.leave_out("DPCM" if data[i + 2] == 0xC2 else "other chips")
            i += 7 + size
        elif 0x80 <= c <= 0x8F:
            t, i = t + (c & 15), i + 1
            info.leave_out("other chips")
        elif c in _OPERANDS:
            i += 1 + _OPERANDS[c]
            info.leave_out("other chips")
        else:
            raise InvalidInputError(f"corrupt VGM (unknown command 0x{c:02X} at byte {i})", path)
        if t > MAX_SAMPLES:
            raise InvalidInputError(too_long(t), path)
    return (np.array(samples, dtype=np.int64), np.array(regs, dtype=np.int16), np.array(vals, dtype=np.int16), t)


def _gd3_title(data: bytes, at: int) -> str:
    """The English track title of a GD3 tag (empty if there is none or it is damaged)."""
    if data[at:at + 4] != b"Gd3 " or at + 12 > len(data):
        return ""
    size = _u32(data, at + 8)
    body = data[at + 12: at + 12 + min(size, 1 << 20)]
    try:
        return body.decode("utf-16-le", errors="replace").split("\x00")[0][:200]
    except Exception:  # noqa: BLE001 - a damaged tag only loses the title
        return ""


def gd3_tag(title: str, game: str = "", author: str = "lakhnes") -> bytes:
    """A GD3 1.00 tag: title, game, system, author (English and Japanese), date, ripper, notes."""
    fields = [title, "", game, "", "Nintendo Entertainment System", "", author, "", "", "lakhnes", ""]
    body = b"".join(f.replace("\x00", "").encode("utf-16-le") + b"\x00\x00" for f in fields)
    return b"Gd3 " + struct.pack("<II", 0x100, len(body)) + body


def read_vgm(src: str | os.PathLike | bytes, name: str | None = None, with_info: bool = False):
    """A score from an NES VGM/VGZ (path or bytes), as NES-MDB's MIDI of it holds it.

    With ``with_info``: ``(score, VgmInfo)``. Raises ``InvalidInputError`` naming the file.
    """
    from lakhnes.formats.apu_trace import trace_to_score

    path = None if isinstance(src, (bytes, bytearray)) else str(src)
    if path is not None:
        try:
            size = os.path.getsize(path)
            if size > MAX_VGM_BYTES:
                raise InvalidInputError(f"file too large ({size / 1e6:.1f} MB)", path)
            data = Path(path).read_bytes()
        except OSError as e:
            raise InvalidInputError(f"cannot read file ({e.strerror or e})", path) from None
    else:
        data = bytes(src)
    if not data:
        raise InvalidInputError("empty file", path)
    if name is None:
        name = Path(path).name.split(".")[0] if path else ""
    samples, regs, vals, nsamps, info = parse(data, path)
    score = trace_to_score(samples, regs, vals, nsamps, info.clock, name=name)
    if score.is_empty:
        raise InvalidInputError("empty song: no notes and no length", path)
    score.check()
    return (score, info) if with_info else score


def vgm_bytes(writes: list[tuple[int, int, int]], nsamps: int, title: str = "", clock: int = NTSC_CLOCK) -> bytes:
    """A VGM 1.61 file: the NES APU at ``clock``, ``writes`` = sorted ``(sample, reg, value)``, a
    GD3 tag with ``title``. Waits use 0x62 (a 60 Hz frame), 0x7n, and 0x61."""
    out = bytearray()
    t = 0

    def wait(n: int) -> None:
        while n > 0:
            if n == 735:
                out.append(0x62)
                return
            if n <= 16:
                out.append(0x70 + n - 1)
                return
            k = min(n, 65535)
            out.extend((0x61, k & 0xFF, k >> 8))
            n -= k

    for s, reg, val in writes:
        if s > t:
            wait(s - t)
            t = s
        out.extend((0xB4, reg, val))
    wait(nsamps - t)
    out.append(0x66)
    header = bytearray(0xC0)
    gd3 = gd3_tag(title)
    header[0:4] = MAGIC
    struct.pack_into("<I", header, 0x04, 0xC0 + len(out) + len(gd3) - 4)
    struct.pack_into("<I", header, 0x08, 0x161)
    struct.pack_into("<I", header, 0x14, 0xC0 + len(out) - 0x14)
    struct.pack_into("<I", header, 0x18, max(0, nsamps))
    struct.pack_into("<I", header, 0x34, 0xC0 - 0x34)
    struct.pack_into("<I", header, 0x84, clock)
    return bytes(header + out + gd3)


def write_vgm(score: NesScore, path: str | os.PathLike, duty: int | None = None, sample_exact: bool = False) -> None:
    """Write ``score`` as an NES VGM (``.vgz``: gzip-compressed), atomically: register writes once a
    frame, as a sound driver makes them; ``sample_exact``: each change at its own sample instead."""
    from lakhnes.formats.apu_driver import FRAME, register_writes
    from lakhnes.io import write_bytes_atomic

    writes, nsamps = register_writes(score, duty=duty, frame=None if sample_exact else FRAME)
    data = vgm_bytes(writes, nsamps, title=score.name or Path(path).name.split(".")[0])
    if str(path).lower().endswith(".vgz"):
        data = gzip.compress(data, mtime=0)
    write_bytes_atomic(path, data)


__all__ = ["read_vgm", "write_vgm", "parse", "vgm_bytes", "VgmInfo", "MAGIC", "SAMPLE_RATE"]
