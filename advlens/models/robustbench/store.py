"""The RobustBench cache under ``$ADVLENS_HOME/robustbench/``: fetching an entry once, then loading it
like any other checkpoint.

``fetch(name)`` downloads the entry's file (:mod:`.download`) into ``robustbench/downloads/``, checks
its SHA-256 (against the catalogue's known prefix, and against the hash recorded the first time
this entry was installed, in ``robustbench/checksums.json``), reads it with ``weights_only=True``
and converts it (:mod:`.convert`), then writes ``robustbench/<dataset>__<threat>__<model>.safetensors``
with its JSON metadata (:func:`advlens.models.checkpoint.save_checkpoint`) and deletes the
download. ``fetch(name, source=FILE)`` does the same with a file obtained elsewhere. A model whose
float32 weights pass the checkpoint size cap (:data:`~advlens.models.schema.MAX_CHECKPOINT_BYTES`,
the WideResNet-70-16s and -106-16) is stored in float16 and cast back to float32 on load; the
metadata says so. Every failure is one line (:class:`~.convert.RobustBenchError`) and leaves no
model in the cache: the model file is written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...paths import home, writing_home
from ...safe_files import UnsafeFileError, read_small_file
from ..checkpoint import atomic_write_bytes, save_checkpoint
from ..schema import MAX_CHECKPOINT_BYTES
from . import download as dl
from .catalog import CatalogEntry, approx_bytes, get_catalog_entry
from .convert import RobustBenchError, convert_file
from .download import DownloadError, Progress, download

MAX_FILE_BYTES = 6_000_000_000  # the largest published file we take (a WRN-106-16 with its optimizer state)


def cache_dir() -> Path:
    return home() / "robustbench"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def model_path(entry: CatalogEntry) -> Path:
    return cache_dir() / f"{entry.dataset}__{entry.threat}__{entry.key}.safetensors"


def is_cached(entry: CatalogEntry) -> bool:
    return model_path(entry).is_file() and model_path(entry).with_suffix(".json").is_file()


def size_cap(entry: CatalogEntry) -> int:
    """The most bytes a downloaded file for ``entry`` may have: 3x its float32 weights (room for an
    optimizer's state) plus 64 MB, within :data:`MAX_FILE_BYTES`."""
    return min(3 * approx_bytes(entry) + 64_000_000, MAX_FILE_BYTES)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksums_path() -> Path:
    return cache_dir() / "checksums.json"


def recorded_checksums() -> dict[str, str]:
    try:
        data = json.loads(read_small_file(_checksums_path(), 1_000_000))
    except (UnsafeFileError, OSError, ValueError):
        return {}
    return (
        {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}
    )


def offline_hint(entry: CatalogEntry) -> str:
    return (
        f"download {entry.source} elsewhere and install it with "
        f"`python -m advlens fetch-model {entry.name} --from FILE`"
    )


def fetch(
    name: str, source: str | os.PathLike | None = None, progress: Progress | None = None, timeout: float = 60.0
) -> Path:
    """Install the catalogue entry ``name`` in the cache (see the module docstring); returns the
    checkpoint's path. Already cached: returns it at once (unless ``source`` is given)."""
    entry = get_catalog_entry(name)
    dest = model_path(entry)
    if source is None and is_cached(entry):
        return dest
    downloaded = source is None
    if downloaded:
        raw = _download(entry, progress, timeout)
    else:
        raw = Path(source)
        _check_source(raw, entry)
    try:
        digest = _check_sha(raw, entry)
        model = convert_file(raw, entry, shown=raw.name)
        _save(model, entry, dest, digest)
    except BaseException:
        if downloaded:
            _unlink(raw)  # a file that failed its checks is not kept for a resume
        raise
    if downloaded:
        _unlink(raw)
    return dest


def _download(entry: CatalogEntry, progress: Progress | None, timeout: float) -> Path:
    target = downloads_dir() / f"{entry.dataset}__{entry.threat}__{entry.key}.pt"
    url = entry.url or dl.GDRIVE_ENTRY.format(id=entry.gdrive_id)
    try:
        with writing_home(f"downloading {entry.name}"):
            return download(url, target, size_cap(entry), progress, gdrive_id=entry.gdrive_id, timeout=timeout)
    except DownloadError as exc:
        text = str(exc)
        if text.startswith("cannot reach"):
            raise RobustBenchError(f"{text}: no network? {offline_hint(entry)}") from None
        raise RobustBenchError(f"{entry.name}: {text}") from None


def _check_source(path: Path, entry: CatalogEntry) -> None:
    if not path.is_file() or path.is_symlink() and not path.resolve().is_file():
        raise RobustBenchError(f"no file at {path}")
    size = path.stat().st_size
    cap = size_cap(entry)
    if size > cap:
        raise RobustBenchError(f"{path.name} is {size:,} bytes, more than the {cap:,} that {entry.name} may take")
    if size == 0:
        raise RobustBenchError(f"{path.name} is empty")


def _check_sha(path: Path, entry: CatalogEntry) -> str:
    digest = sha256_of(path)
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        raise RobustBenchError(
            f"{path.name}'s SHA-256 {digest[:16]}... does not start with {entry.sha256_prefix}, the published one "
            f"for {entry.name}; nothing was installed"
        )
    known = recorded_checksums().get(entry.name)
    if known and known != digest:
        raise RobustBenchError(
            f"{path.name}'s SHA-256 {digest[:16]}... differs from the {known[:16]}... recorded when {entry.name} was "
            f"first installed ({_checksums_path()}); nothing was installed"
        )
    return digest


def _save(model, entry: CatalogEntry, dest: Path, digest: str) -> None:
    half = approx_bytes(entry) > MAX_CHECKPOINT_BYTES
    if half:
        model = model.half()
    meta = {
        "description": f"RobustBench {entry.name}: {entry.describe()}",
        "robustbench": {
            "name": entry.name,
            "source": entry.source,
            "sha256": digest,
            "published": {"clean": entry.clean, "autoattack": entry.autoattack, "eps": entry.eps, "n": entry.n_test},
            "preprocessing": entry.preprocessing,
            "stored_as": "float16 (over the checkpoint size cap; cast back to float32 on load)" if half else "float32",
        },
    }
    recipe = {"source": "robustbench", "paper": entry.paper, "link": entry.link, "threat": entry.threat}
    metrics = {"published_clean": entry.clean / 100, "published_autoattack": entry.autoattack / 100}
    with writing_home(f"installing {entry.name}"):
        sums = recorded_checksums()
        sums[entry.name] = digest
        save_checkpoint(model, dest, recipe=recipe, metrics=metrics, extra_meta=meta)
        atomic_write_bytes(_checksums_path(), json.dumps(sums, indent=1, sort_keys=True).encode())


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def cached_entries() -> list[tuple[CatalogEntry, Path]]:
    from .catalog import ENTRIES

    return [(e, model_path(e)) for e in ENTRIES if is_cached(e)]


def not_cached_message(entry: CatalogEntry) -> str:
    return (
        f"{entry.name} is not downloaded yet ({approx_bytes(entry) / 1e6:,.0f} MB): run "
        f"`python -m advlens fetch-model {entry.name}`, or with no network {offline_hint(entry)}"
    )


def published_metrics(entry: CatalogEntry) -> dict:
    """What a zoo entry shows of the published figures (fractions, with their protocol)."""
    return {
        "published_clean": entry.clean / 100,
        "published_autoattack": entry.autoattack / 100,
        "published_protocol": f"RobustBench, AutoAttack standard, {entry.threat} eps {entry.eps}, n = {entry.n_test:,}",
    }
