"""The job store: a SQLite database of every background job (run) and its metrics, plus one folder per job.

``$ADVLENS_HOME/runs.sqlite`` (WAL mode, so the UI reads while a worker writes) holds:

- ``runs``: one row per job: its ``kind`` (train, evaluate, perturbation, certify, attention: the
  registered kinds of :mod:`advlens.jobs.kinds`), its status (queued, running, done, failed, cancelled),
  progress (step, epoch, ETA), the worker's pid/host, a cancel flag, the spec (``config``, JSON), what
  the kind says of it (``meta``, JSON: its title, the module that registers the kind, and the kind's
  own fields) and the final metrics. The ``objective``/``arch`` columns belong to training runs only;
- ``metrics``: long-format scalars ``(run_id, step, epoch, t, key, value)``.

``$ADVLENS_HOME/runs/<run_id>/`` holds ``config.json``, the job's log named for its kind
(``train.log``, ``evaluate.log``, ...), ``worker.out`` (the worker's stdout/stderr) and what the kind
saves. Every write is one short transaction on a fresh connection, so a writer process and any number
of reader processes never hold locks for long.

Scheduling lives here too, because it must be atomic: :meth:`RunStore.claim` lets a queued job
start only when no live job holds its device and it is the oldest queued job of that device
(see :mod:`advlens.jobs` for the whole design). Dead workers (pid gone while the row still says
running or queued) are found by :meth:`RunStore.reap_dead` and marked failed.

Schema versions (``PRAGMA user_version``), upgraded in place by :func:`migrate` on first use:
0 the first store (training runs only, no ``kind``); 1 evaluations and perturbation jobs as kinds,
with their suite/models or method/model in ``objective``/``arch``; 2 (now) the ``meta`` column, those
fields moved into it and ``objective``/``arch`` left empty for every kind but training.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import home, run_model_name, runs_dir, writing_home

STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    objective TEXT NOT NULL,
    dataset TEXT NOT NULL,
    arch TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    pid INTEGER,
    pid_start TEXT,
    host TEXT,
    world_size INTEGER NOT NULL DEFAULT 1,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0,
    epochs INTEGER NOT NULL DEFAULT 0,
    eta_s REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    final_path TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    config TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'train',
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_device_status ON runs (device, status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    t REAL NOT NULL,
    key TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS metrics_run_key ON metrics (run_id, key, step);
"""

_RUN_COLUMNS = (
    "id",
    "name",
    "objective",
    "dataset",
    "arch",
    "device",
    "status",
    "message",
    "created_at",
    "queued_at",
    "started_at",
    "updated_at",
    "finished_at",
    "pid",
    "pid_start",
    "host",
    "world_size",
    "cancel_requested",
    "step",
    "total_steps",
    "epoch",
    "epochs",
    "eta_s",
    "attempts",
    "final_path",
    "metrics",
    "config",
    "kind",
    "meta",
)
SCHEMA_VERSION = 2
# The modules that register the kinds of the stores before version 2 (their rows name no module).
LEGACY_MODULES = {
    "train": "advlens.training.jobs",
    "evaluate": "advlens.evaluation.jobs",
    "perturbation": "advlens.perturbations.jobs",
}


def db_path() -> Path:
    return home() / "runs.sqlite"


def run_dir(run_id: str) -> Path:
    return runs_dir() / run_id


def log_name(kind: str) -> str:
    """The log file of a job of ``kind`` in its folder: ``train.log``, ``evaluate.log``, ..."""
    return f"{kind}.log"


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """An id of the process ``pid`` that survives pid reuse (its start time), or None if it is gone.

    On Linux: field 22 of /proc/<pid>/stat; a zombie counts as gone. Elsewhere: "alive" when
    ``os.kill(pid, 0)`` succeeds.
    """
    if pid is None or pid <= 0:
        return None
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except OSError:
            return None
        rest = text[text.rfind(")") + 2 :].split()
        if not rest or rest[0] in ("Z", "X"):
            return None
        return rest[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "alive"
    return "alive"


@dataclass
class RunRecord:
    """One row of ``runs``, with its JSON columns decoded."""

    id: str
    name: str
    objective: str
    dataset: str
    arch: str
    device: str
    status: str
    message: str
    created_at: float
    queued_at: float
    started_at: float | None
    updated_at: float
    finished_at: float | None
    pid: int | None
    pid_start: str | None
    host: str | None
    world_size: int
    cancel_requested: bool
    step: int
    total_steps: int
    epoch: int
    epochs: int
    eta_s: float | None
    attempts: int
    final_path: str | None
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    kind: str = "train"
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        d = dict(zip(_RUN_COLUMNS, row))
        for key in ("metrics", "config", "meta"):
            d[key] = json.loads(d[key] or "{}")
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d)

    @property
    def title(self) -> str:
        """One line naming the job in listings: the kind's title, or a training run's objective and arch."""
        return self.meta.get("title") or (f"{self.objective} · {self.arch}" if self.objective else self.kind)

    @property
    def zoo_name(self) -> str:
        return run_model_name(self.id, self.objective)

    @property
    def folder(self) -> Path:
        return run_dir(self.id)

    @property
    def log_path(self) -> Path:
        """The worker's log, named for the job's kind (a job of a version-1 store kept ``train.log``)."""
        path = self.folder / log_name(self.kind)
        legacy = self.folder / "train.log"
        return legacy if not path.exists() and legacy.exists() else path

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class RunStore:
    """Short-transaction access to ``runs.sqlite``. Cheap to create; holds no open connection."""

    _initialised: set[str] = set()
    cancels_requested = 0  # cancels asked by this process: a StopFlag reads the store at once when it grows

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else db_path()

    # --------------------------------------------------------------------------- connection
    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection; with ``write`` the block is one IMMEDIATE transaction. A home that is
        read-only, full or not a folder raises :class:`advlens.paths.HomeError` (one line)."""
        with writing_home("opening the run store (runs.sqlite)", assume_home=False), self._connect(write) as con:
            yield con

    @contextlib.contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout = 30000")
            key = str(self.path.resolve())
            if key not in RunStore._initialised or not self.path.exists():
                con.execute("PRAGMA journal_mode = WAL")
                migrate(con)
                RunStore._initialised.add(key)
            con.execute("PRAGMA synchronous = NORMAL")
            if write:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            else:
                yield con
        finally:
            con.close()

    # ------------------------------------------------------------------------------- create
    def new_run_id(self) -> str:
        while True:
            run_id = secrets.token_hex(3)
            if self.get(run_id) is None and not run_dir(run_id).exists():
                return run_id

    def create_run(
        self,
        config: dict,
        device: str,
        run_id: str | None = None,
        world_size: int = 1,
        kind: str = "train",
        meta: dict | None = None,
    ) -> RunRecord:
        """Insert a queued job of ``kind`` and make its folder with ``config.json``. A training run's
        row also shows its objective and architecture; every other kind describes itself in ``meta``."""
        if not isinstance(kind, str) or not kind.isidentifier():
            raise ValueError(f"a job kind is a short name, not {kind!r}")
        run_id = run_id or self.new_run_id()
        folder = run_dir(run_id)
        from ..models.checkpoint import atomic_write_bytes

        made = not folder.exists()
        try:
            with writing_home(f"making the folder of run {run_id}"):
                (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(folder / "config.json", json.dumps(config, indent=2, sort_keys=True).encode())
            self._insert(run_id, config, device, world_size, kind, meta)
        except BaseException:  # a full or read-only home: no half-made folder is left behind
            if made:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.get(run_id)

    def _insert(self, run_id: str, config: dict, device: str, world_size: int, kind: str, meta: dict | None) -> None:
        now = time.time()
        train = kind == "train"
        with self.connect(write=True) as con:
            con.execute(
                "INSERT INTO runs (id, name, objective, dataset, arch, device, status, created_at, queued_at,"
                " updated_at, world_size, epochs, config, kind, meta)"
                " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    str(config.get("name") or ""),
                    config["objective"] if train else "",
                    str(config.get("dataset") or ""),
                    config["arch"] if train else "",
                    device,
                    now,
                    now,
                    now,
                    world_size,
                    int(config.get("epochs", 0)) if train else 0,
                    json.dumps(config, sort_keys=True),
                    kind,
                    json.dumps(meta or {}, sort_keys=True),
                ),
            )

    # ------------------------------------------------------------------------------- read
    def get(self, run_id: str) -> RunRecord | None:
        with self.connect() as con:
            row = con.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def require(self, run_id: str) -> RunRecord:
        rec = self.get(run_id)
        if rec is None:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        return rec

    def list_runs(
        self, status: str | tuple[str, ...] | None = None, limit: int = 500, kind: str | None = "train"
    ) -> list[RunRecord]:
        """Runs of one ``kind`` (None: every kind), newest first."""
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        where, args = [], ()
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args = statuses
        if kind is not None:
            where.append("kind = ?")
            args += (kind,)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ?"
        with self.connect() as con:
            rows = con.execute(sql, args + (limit,)).fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def cancel_requested(self, run_id: str) -> bool:
        with self.connect() as con:
            row = con.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def metrics(self, run_id: str, keys: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
        """{key: {"step": [...], "epoch": [...], "t": [...], "value": [...]}} ordered by step."""
        sql = "SELECT key, step, epoch, t, value FROM metrics WHERE run_id = ?"
        args: list = [run_id]
        if keys:
            sql += f" AND key IN ({', '.join('?' * len(keys))})"
            args += list(keys)
        sql += " ORDER BY key, step, t"
        out: dict[str, dict[str, list[float]]] = {}
        with self.connect() as con:
            for key, step, epoch, t, value in con.execute(sql, args):
                s = out.setdefault(key, {"step": [], "epoch": [], "t": [], "value": []})
                s["step"].append(step)
                s["epoch"].append(epoch)
                s["t"].append(t)
                s["value"].append(value)
        return out

    # ------------------------------------------------------------------------------- write
    def update(self, run_id: str, **fields) -> None:
        if not fields:
            return
        bad = set(fields) - set(_RUN_COLUMNS)
        if bad:
            raise KeyError(f"unknown run column(s): {', '.join(sorted(bad))}")
        for key in ("metrics", "config", "meta"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key], sort_keys=True)
        fields.setdefault("updated_at", time.time())
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.connect(write=True) as con:
            con.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def log_metrics(
        self, run_id: str, step: int, epoch: float, values: dict[str, float], progress: dict | None = None
    ) -> None:
        """Append scalars (non-finite values are stored as NULL) and, optionally, progress fields."""
        now = time.time()
        rows = []
        for k, v in values.items():
            v = float(v)
            rows.append((run_id, int(step), float(epoch), now, k, v if v == v and abs(v) != float("inf") else None))
        with self.connect(write=True) as con:
            con.executemany("INSERT INTO metrics (run_id, step, epoch, t, key, value) VALUES (?, ?, ?, ?, ?, ?)", rows)
            if progress:
                cols = ", ".join(f"{k} = ?" for k in progress)
                con.execute(f"UPDATE runs SET {cols}, updated_at = ? WHERE id = ?", (*progress.values(), now, run_id))

    def truncate_metrics(self, run_id: str, after_step: int) -> None:
        """Drop scalars logged after ``after_step`` (a resumed run rewinds to its checkpoint)."""
        with self.connect(write=True) as con:
            con.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, int(after_step)))

    def request_cancel(self, run_id: str) -> RunRecord:
        """Set the cancel flag; a queued run is cancelled at once (its waiting worker then exits)."""
        now = time.time()
        with self.connect(write=True) as con:
            con.execute("UPDATE runs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, run_id))
            con.execute(
                "UPDATE runs SET status = 'cancelled', message = 'cancelled while queued', finished_at = ?"
                " WHERE id = ? AND status = 'queued'",
                (now, run_id),
            )
        RunStore.cancels_requested += 1
        return self.require(run_id)

    def requeue(self, run_id: str, device: str) -> RunRecord:
        """Put a finished (cancelled/failed) run back in the queue to be resumed."""
        now = time.time()
        with self.connect(write=True) as con:
            row = con.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id!r}")
            if row[0] in ACTIVE:
                raise ValueError(f"run {run_id} is {row[0]}; only a cancelled, failed or done run can be resumed.")
            con.execute(
                "UPDATE runs SET status = 'queued', cancel_requested = 0, message = 'queued to resume',"
                " queued_at = ?, updated_at = ?, finished_at = NULL, pid = NULL, pid_start = NULL,"
                " device = ? WHERE id = ?",
                (now, now, device, run_id),
            )
        return self.require(run_id)

    def attach_worker(self, run_id: str, pid: int, host: str | None = None) -> None:
        self.update(run_id, pid=pid, pid_start=process_start(pid), host=host or hostname())

    def finish(self, run_id: str, status: str, message: str = "", **fields) -> None:
        if status not in FINISHED:
            raise ValueError(f"finish() takes one of {FINISHED}, not {status!r}")
        self.update(run_id, status=status, message=message, finished_at=time.time(), eta_s=None, **fields)

    # --------------------------------------------------------------------------- scheduling
    def _reap(self, con: sqlite3.Connection) -> list[str]:
        host = hostname()
        dead = []
        rows = con.execute(
            "SELECT id, pid, pid_start, status FROM runs WHERE status IN ('queued', 'running')"
            " AND pid IS NOT NULL AND host = ?",
            (host,),
        ).fetchall()
        for run_id, pid, start, status in rows:
            now_start = process_start(pid)
            if now_start is None or (start is not None and now_start != start):
                dead.append(run_id)
                con.execute(
                    "UPDATE runs SET status = 'failed', finished_at = ?, updated_at = ?, eta_s = NULL,"
                    " message = ? WHERE id = ?",
                    (
                        time.time(),
                        time.time(),
                        f"the worker process (pid {pid}) ended without reporting while {status}: it was "
                        "killed or crashed. Resume continues from the last checkpoint.",
                        run_id,
                    ),
                )
        return dead

    def reap_dead(self) -> list[str]:
        """Mark runs whose worker process is gone (same host) as failed. Returns their ids."""
        with self.connect(write=True) as con:
            return self._reap(con)

    def claim(self, run_id: str, max_running: int = 1) -> str:
        """Try to move ``run_id`` from queued to running.

        Returns "started" when this call started it, "wait" when it must wait its turn, or the
        run's current status when it is not queued (e.g. "running" under another worker).

        A run may start when fewer than ``max_running`` live runs hold its device and no queued run
        of the same device was queued before it (first come, first served). Atomic.
        """
        with self.connect(write=True) as con:
            self._reap(con)
            row = con.execute(
                "SELECT status, device, queued_at, cancel_requested FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id!r}")
            status, device, queued_at, cancel = row
            if status != "queued":
                return status
            if cancel:
                con.execute(
                    "UPDATE runs SET status = 'cancelled', finished_at = ?, message = 'cancelled while"
                    " queued' WHERE id = ?",
                    (time.time(), run_id),
                )
                return "cancelled"
            running = con.execute(
                "SELECT COUNT(*) FROM runs WHERE device = ? AND status = 'running'", (device,)
            ).fetchone()[0]
            earlier = con.execute(
                "SELECT COUNT(*) FROM runs WHERE device = ? AND status = 'queued' AND"
                " (queued_at < ? OR (queued_at = ? AND id < ?))",
                (device, queued_at, queued_at, run_id),
            ).fetchone()[0]
            if running >= max_running or earlier:
                return "wait"
            now = time.time()
            con.execute(
                "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), updated_at = ?,"
                " attempts = attempts + 1, message = '' WHERE id = ?",
                (now, now, run_id),
            )
            return "started"

    def position_in_queue(self, run_id: str) -> int:
        """How many runs are ahead of a queued run on its device (running ones included)."""
        rec = self.require(run_id)
        with self.connect() as con:
            return con.execute(
                "SELECT COUNT(*) FROM runs WHERE device = ? AND id != ? AND (status = 'running' OR"
                " (status = 'queued' AND queued_at <= ?))",
                (rec.device, run_id, rec.queued_at),
            ).fetchone()[0]

    def delete(self, run_id: str) -> None:
        """Forget a finished job: its rows and its folder (a deleted training run leaves the zoo)."""
        rec = self.require(run_id)
        if rec.active:
            raise ValueError(f"run {run_id} is {rec.status}; cancel it first.")
        with self.connect(write=True) as con:
            con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(run_dir(run_id), ignore_errors=True)


# ------------------------------------------------------------------------------------ migration
def _move_to_meta(con: sqlite3.Connection, kind: str, first: str, second: str, split_second: bool) -> None:
    """Version 1 -> 2 for one kind: its ``objective``/``arch`` columns become ``meta[first]``/``meta[second]``."""
    rows = con.execute("SELECT id, objective, arch, meta FROM runs WHERE kind = ?", (kind,)).fetchall()
    for run_id, objective, arch, meta in rows:
        meta = json.loads(meta or "{}")
        meta.setdefault(first, objective)
        meta.setdefault(second, [a for a in arch.split(", ") if a] if split_second else arch)
        meta.setdefault("title", f"{objective}: {arch}")
        meta.setdefault("module", LEGACY_MODULES[kind])
        con.execute(
            "UPDATE runs SET meta = ?, objective = '', arch = '' WHERE id = ?",
            (json.dumps(meta, sort_keys=True), run_id),
        )


def migrate(con: sqlite3.Connection) -> int:
    """Bring the store of ``con`` to :data:`SCHEMA_VERSION` in place (one transaction); returns the
    version it had. Rows of every kind keep their ids, statuses, metrics and folders. A store that is
    up to date is only read (a read-only home can still list its jobs)."""
    if con.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return SCHEMA_VERSION
    con.execute("BEGIN IMMEDIATE")
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]  # another process may have just done it
        if version < SCHEMA_VERSION:
            _upgrade(con)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return version


def _upgrade(con: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
    if "kind" not in columns:  # version 0: a store written before evaluations were runs
        con.execute("ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train'")
    if "meta" not in columns:
        con.execute("ALTER TABLE runs ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'")
    _move_to_meta(con, "evaluate", "suite", "models", split_second=True)
    _move_to_meta(con, "perturbation", "method", "model", split_second=False)
    train = json.dumps({"module": LEGACY_MODULES["train"]})
    con.execute("UPDATE runs SET meta = ? WHERE kind = 'train' AND meta = '{}'", (train,))


def read_log_tail(path: Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a log file ('' when absent)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
