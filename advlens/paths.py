"""Where advlens keeps its state: ``$ADVLENS_HOME`` (default ``~/.advlens``).

When that folder cannot be written (a read-only file system, a full disk, a file in its place),
every writer reports it the same way: :class:`HomeError`, one line that names ``ADVLENS_HOME`` and
what to do, instead of an ``OSError`` or ``sqlite3.OperationalError`` traceback
(:func:`writing_home`, :func:`home_error`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = PROJECT_ROOT / "assets"
ASSET_MODELS_DIR = ASSETS_DIR / "models"


def home() -> Path:
    return Path(os.environ.get("ADVLENS_HOME") or Path.home() / ".advlens")


def user_models_dir() -> Path:
    return home() / "models"


def runs_dir() -> Path:
    return home() / "runs"


def run_model_name(run_id: str, objective: str) -> str:
    """The zoo's name of a finished training run's model (``run-<id>-<objective>``): what the zoo lists
    and what the job store's record names."""
    return f"run-{run_id}-{objective}"


class HomeError(OSError):
    """``$ADVLENS_HOME`` cannot be written; the message names it and says what to do."""


# errno -> what it means for the folder
_STORAGE_ERRNOS = {
    errno.EROFS: "is on a read-only file system",
    errno.ENOSPC: "is full (no space left on the device)",
    errno.EDQUOT: "is over its disk quota",
    errno.EACCES: "is not writable (permission denied)",
    errno.EPERM: "is not writable (operation not permitted)",
    errno.ENOTDIR: "is not a folder (a file stands in its path)",
    errno.EEXIST: "is not a folder (a file stands in its path)",
}
# SQLite's messages (sqlite3.OperationalError carries no errno) -> the same words
_SQLITE_MESSAGES = {
    "readonly database": _STORAGE_ERRNOS[errno.EROFS],
    "database or disk is full": _STORAGE_ERRNOS[errno.ENOSPC],
    "unable to open database file": "cannot hold the run store (unable to open runs.sqlite)",
    "disk i/o error": "cannot be written (disk I/O error)",
}


def _under_home(filename, assume_home: bool) -> bool:
    if filename is None:
        return assume_home  # a write that failed after opening (a full disk) names no file
    try:
        return Path(os.path.abspath(filename)).is_relative_to(Path(os.path.abspath(home())))
    except (TypeError, ValueError):
        return False


def home_error(exc: BaseException, what: str = "", assume_home: bool = False) -> HomeError | None:
    """``exc`` as a :class:`HomeError` when it says that ``$ADVLENS_HOME`` cannot be written
    (read-only, full, not a folder); None for any other error, which callers re-raise. An
    ``OSError`` counts when it names a file under the home, or names none and ``assume_home``
    (the caller was writing there); SQLite's errors always count (the run store is there)."""
    if isinstance(exc, HomeError):
        return exc
    reason = None
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        if _under_home(exc.filename, assume_home) or (exc.filename2 and _under_home(exc.filename2, False)):
            reason = _STORAGE_ERRNOS[exc.errno]
    elif isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        reason = next((r for key, r in _SQLITE_MESSAGES.items() if key in text), None)
    if reason is None:
        return None
    doing = f"; {what} failed" if what else ""
    full = reason in (_STORAGE_ERRNOS[errno.ENOSPC], _STORAGE_ERRNOS[errno.EDQUOT])
    advice = (
        "free some space there, or set ADVLENS_HOME to another folder"
        if full
        else "set ADVLENS_HOME to a writable folder"
    )
    return HomeError(f"ADVLENS_HOME ({home()}) {reason}{doing}: {advice}.")


@contextlib.contextmanager
def writing_home(what: str, assume_home: bool = True) -> Iterator[None]:
    """Run a block that writes under ``$ADVLENS_HOME``; a storage failure becomes a :class:`HomeError`
    (an ``OSError`` that names no file counts only with ``assume_home``: see :func:`home_error`)."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        problem = home_error(exc, what, assume_home)
        if problem is None:
            raise
        raise problem from None
