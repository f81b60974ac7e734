"""Files from strangers: type and size are checked before a byte is read.

A ``.json`` in the models folder, a ``--config`` or a checkpoint path can be a symbolic link to
``/dev/zero`` (an endless read that fills the memory), a named pipe (a read that blocks forever) or a
file of many gigabytes; ``Path.stat().st_size`` is 0 for the first two, so a size check alone lets
them through. :func:`read_small_file` is the one way advlens reads such a file: the path must lead to
a regular file (links are followed, devices, pipes, sockets and folders are refused) of at most
``max_bytes``, checked again on the opened descriptor (the file cannot be swapped in between), and
it never reads more than ``max_bytes + 1`` bytes even when the file grows meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFileError(ValueError):
    """A file that was not read: missing, not a regular file, or too large. The message says which."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check(st: os.stat_result, what: str, max_bytes: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{what} is {_kind(st.st_mode)}, not a regular file; it was not read.")
    if st.st_size > max_bytes:
        raise UnsafeFileError(f"{what} is {st.st_size:,} bytes; at most {max_bytes:,} are accepted.")


def read_small_file(path: str | os.PathLike, max_bytes: int, what: str | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (at most ``max_bytes``); :class:`UnsafeFileError`
    otherwise. ``what`` names the file in the message (default: its name)."""
    path = Path(path)
    what = what or path.name
    try:
        _check(os.stat(path), what, max_bytes)  # refuse a pipe or a device before opening it
        # O_NONBLOCK: should a pipe be swapped in after the check, opening it does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise UnsafeFileError(f"{what} cannot be read ({exc.strerror or exc}).") from None
    try:
        st = os.fstat(fd)
        _check(st, what, max_bytes)
        parts, got = [], 0
        while got <= max_bytes:
            want = max_bytes + 1 - got
            if got < st.st_size:  # the size it has (+1 to see that it ends there), in one read
                want = min(want, st.st_size - got + 1)
            chunk = os.read(fd, min(want, 1 << 30))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise UnsafeFileError(f"{what} cannot be read ({exc.strerror or exc}).") from None
    finally:
        os.close(fd)
    if got > max_bytes:
        raise UnsafeFileError(f"{what} grew past {max_bytes:,} bytes while it was read.")
    return parts[0] if len(parts) == 1 else b"".join(parts)
