"""RobustBench's robust models by name (``rb:cifar10/Linf/Carmon2019Unlabeled``): the catalogue,
the downloader and the converter to our checkpoints (issue 25)."""

from .catalog import CATALOG, ENTRIES, PREFIX, CatalogEntry, get_catalog_entry, is_robustbench_name, list_catalog
from .convert import RobustBenchError
from .store import cache_dir, cached_entries, fetch, is_cached, model_path, not_cached_message

__all__ = [
    "CATALOG",
    "ENTRIES",
    "PREFIX",
    "CatalogEntry",
    "RobustBenchError",
    "cache_dir",
    "cached_entries",
    "fetch",
    "get_catalog_entry",
    "is_cached",
    "is_robustbench_name",
    "list_catalog",
    "model_path",
    "not_cached_message",
]
