"""Small file helpers: atomic writes, and checking that an output can be written."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    for up in (path.parent, *path.parent.parents):  # a clear reason where a "folder" is a file
        if up.exists():
            if not up.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{up} is a file, not a folder", str(path))
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if tmp.exists():  # the usual permissions, whatever the writer used (safetensors: 0600)
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        if e.filename in (str(tmp), tmp):  # name the file the user asked for, never the temporary one
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


_TMP_RE = re.compile(r"^\..+\.tmp(\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left in ``folder`` (``.NAME.tmp<pid>``) when its
    process was killed (kill -9, power loss): those whose pid is no longer running. Returns them."""
    gone = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return gone
    for e in entries:
        m = _TMP_RE.match(e.name)
        if m is None or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                gone.append(Path(e.path))
        except OSError:
            pass
    return gone


def check_writable(path: str | os.PathLike) -> None:
    """Raise ``OSError`` (naming ``path``) unless a file can be written at ``path``: checked by
    creating and removing a file in its folder, or in the nearest folder above it that exists
    (the missing ones would be made). Cheap; meant to run before a long job."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    up = path.parent
    while not up.exists() and up != up.parent:
        up = up.parent
    if not up.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{up} is a file, not a folder", str(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=".lakhnes-probe-", dir=up)
    except OSError as e:
        raise OSError(e.errno, f"{up}: {e.strerror}" if up != path.parent else e.strerror, str(path)) from None
    os.close(fd)
    os.unlink(probe)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
