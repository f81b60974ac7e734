"""Which n images of a split a feature uses: one rule for every evaluation, certification and analysis.

"The first n test images" is a sample of the test set only when the split's order is the official,
class-mixed one. The rule:

- **first n** (RobustBench's protocol) for a dataset whose order is the official one: MNIST and
  Fashion-MNIST (their IDX files), CIFAR-10 (its python batches), sklearn digits (its fixed
  stratified split). :class:`~advlens.data.base.ImageDataset` says so in ``info["official_order"]``.
- **a class-stratified sample drawn with a fixed seed** for any other order (image folders, whose
  loader sorts by class and then file, so their first n are one class; the shipped sample sets;
  uploads; the CIFAR-10 JPEG copy). Each class's images are shuffled with the seed, then the classes
  are interleaved in proportion to their size (with equal classes: the first image of each class,
  then the second, ...), so every window of the order, ``offset`` to ``offset + n``, is a stratified
  sample. The order depends on the labels, the file names (the loader sorts them) and the seed only,
  never on the file system's listing order.
- **given indices** (``--indices FILE``) to repeat another's subset exactly.

The rule, the seed, the offset, the dataset indices and the class counts travel with every report
(:meth:`Subset.to_dict`), and :meth:`Subset.describe` is the sentence protocols carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import DataError, ImageDataset

SUBSET_SEED = 0  # the default seed of the stratified rule: part of the protocol, change it knowingly
MAX_INDICES_BYTES = 4 * 1024**2  # an indices file is a list of integers; 100,000 of them fit in 1 MB
MAX_INDICES = 100_000
RULE_HELP = (
    "the first n where the split's order is the official one (MNIST, CIFAR-10's batches, digits), a "
    "class-stratified sample with a fixed seed otherwise (image folders, sample sets, the CIFAR-10 JPEG copy)"
)


@dataclass(frozen=True)
class Subset:
    """The images a feature uses: dataset indices in order, and how they were chosen."""

    indices: torch.Tensor  # (n,) long: positions in the split, in the order used
    rule: str  # "first", "stratified" or "indices"
    seed: int  # the stratified rule's seed (kept for the others too, unused there)
    offset: int
    dataset: str
    split: str
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]  # images per class in the subset (class order)
    classes_in_split: int  # classes present in the whole split
    files: tuple[str, ...] | None = None  # the image files (image folders), by position in the subset
    source: str = ""  # where given indices came from
    official: bool = True  # the split's order is the official one (False: a legacy first-n of another order)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def classes_covered(self) -> int:
        return sum(1 for c in self.class_counts if c > 0)

    def rule_text(self) -> str:
        named = f"{self.dataset} " if self.dataset != self.split else ""  # a folder named "test": "the test split"
        n, where = len(self), f"of the {named}{self.split} split"
        start = f" from position {self.offset:,}" if self.offset else ""
        if self.rule == "first":
            order = "its official order" if self.official else "its file order, not a sample of the split"
            return f"the first {n:,} images {where} ({order}){start}"
        if self.rule == "stratified":
            return f"a class-stratified sample of {n:,} images {where}, seed {self.seed}{start}"
        return f"{n:,} given images {where}" + (f" ({self.source})" if self.source else "")

    def counts_text(self) -> str:
        names = self.class_names or tuple(str(i) for i in range(len(self.class_counts)))
        shown = [f"{names[c]} {k}" for c, k in enumerate(self.class_counts) if k]
        return f"{self.classes_covered} of {self.classes_in_split} classes: " + ", ".join(shown)

    def describe(self, start: str = "images") -> str:
        """The sentence a protocol carries: the rule, then the class counts (``start="Images"`` to open
        a sentence)."""
        return f"{start}: {self.rule_text()}; {self.counts_text()}"

    def warning(self, start: str = "the") -> str | None:
        """A sentence when the subset leaves classes out (None when it covers every class)."""
        if self.classes_covered >= self.classes_in_split:
            return None
        why = f" (n = {len(self)} is smaller than the number of classes)" if len(self) < self.classes_in_split else ""
        return (
            f"{start} images cover {self.classes_covered} of the {self.classes_in_split} classes{why}: "
            "the figure does not represent the test set"
        )

    def to_dict(self) -> dict:
        out = {
            "rule": self.rule,
            "seed": self.seed,
            "offset": self.offset,
            "n": len(self),
            "description": self.describe(),
            "class_counts": {self._name(c): k for c, k in enumerate(self.class_counts) if k},
            "classes_covered": self.classes_covered,
            "classes_in_split": self.classes_in_split,
            "indices": self.indices.tolist(),
        }
        if self.files is not None:
            out["files"] = list(self.files)
        if self.source:
            out["source"] = self.source
        return out

    def image_name(self, position: int) -> dict:
        """How a per-image record names image ``position`` of the subset: its dataset index (and file)."""
        out = {"dataset_index": int(self.indices[position])}
        if self.files is not None:
            out["file"] = self.files[position]
        return out

    def _name(self, c: int) -> str:
        return self.class_names[c] if c < len(self.class_names) else str(c)


def short_rule(subset: dict | None) -> str:
    """A subset's rule in a few words, for a table cell or a zoo line (``subset``: :meth:`Subset.to_dict`,
    None for a report written before the rule: the first n)."""
    if not subset:
        return "first n"
    rule = {"first": "first n", "stratified": f"stratified, seed {subset['seed']}", "indices": "given indices"}
    text = rule.get(subset["rule"], subset["rule"])
    if subset.get("offset"):
        text += f", from {subset['offset']}"
    return f"{text} ({subset['classes_covered']}/{subset['classes_in_split']} classes)"


def official_order(ds: ImageDataset) -> bool:
    return bool(ds.info.get("official_order", False))


def stratified_order(labels: torch.Tensor, seed: int = SUBSET_SEED) -> torch.Tensor:
    """Every index of ``labels`` in the stratified rule's order (see the module docstring).

    Class c's images are shuffled with a generator seeded by ``seed``; its r-th image gets the key
    (r + 0.5) / count_c; a stable sort by (key, class) interleaves the classes in proportion."""
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.long()
    keys = torch.empty(len(labels), dtype=torch.float64)
    classes = torch.unique(labels)  # sorted
    for c in classes.tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        keys[idx] = (torch.arange(len(idx), dtype=torch.float64) + 0.5) / len(idx)
    # sort by (key, class) with two stable sorts: equal keys (equal-sized classes) go by class
    order = torch.argsort(labels, stable=True)
    return order[torch.argsort(keys[order], stable=True)]


def choose_images(
    ds: ImageDataset,
    n: int = 0,
    offset: int = 0,
    indices: list[int] | torch.Tensor | None = None,
    seed: int = SUBSET_SEED,
    source: str = "",
    first: bool = False,
) -> Subset:
    """The ``n`` images (0: all from ``offset`` on) that the rule picks from ``ds``, or ``indices``.
    ``first`` takes the first n whatever the order (an evaluation queued before this rule existed
    resumes on the images it started with)."""
    total = len(ds)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DataError(f"n must be a whole number >= 0, not {n!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise DataError(f"the offset must be a whole number >= 0, not {offset!r}")
    if indices is not None:
        idx = check_indices(indices, total, ds)
        rule, offset = "indices", 0
    else:
        if offset >= total:
            raise DataError(f"offset {offset:,} is past the end: {ds.name} ({ds.split}) has {total:,} images")
        stop = total if n == 0 else min(offset + n, total)
        if first or official_order(ds):
            rule, idx = "first", torch.arange(offset, stop)
        else:
            rule, idx = "stratified", stratified_order(ds.labels, seed)[offset:stop]
    labels = ds.labels[idx]
    known = ds.labels[ds.labels >= 0]
    num = max(len(ds.class_names), int(known.max()) + 1 if len(known) else 0)
    counts = torch.bincount(labels[labels >= 0], minlength=num).tolist() if num else []
    in_split = int(torch.unique(known).numel()) if len(known) else 0
    files = tuple(ds.item_names[i] for i in idx.tolist()) if ds.item_names and ds.info.get("files") else None
    return Subset(
        indices=idx.long(),
        rule=rule,
        seed=int(seed),
        offset=int(offset),
        dataset=ds.name,
        split=ds.split,
        class_names=tuple(ds.class_names),
        class_counts=tuple(counts),
        classes_in_split=in_split,
        files=files,
        source=source,
        official=official_order(ds),
    )


def load_subset(
    dataset: str,
    split: str,
    root: str | None,
    n: int = 0,
    offset: int = 0,
    indices=None,
    seed: int = SUBSET_SEED,
    *,
    first: bool = False,
    error: type[Exception] = DataError,
):
    """The images of ``dataset``'s ``split`` that the rule (:func:`choose_images`) picks: (x, y, subset).
    A choice the rule refuses raises ``error`` (a job kind's config error) with the rule's one line."""
    from .catalog import load_dataset

    ds = load_dataset(dataset, split=split, root=root)
    try:
        subset = choose_images(ds, n, offset, indices, seed, first=first)
    except DataError as exc:
        raise error(str(exc)) from None
    x, y = ds.batch(subset.indices)
    return x, y, subset


def check_indices(indices, total: int, ds: ImageDataset | None = None) -> torch.Tensor:
    """Given indices as a LongTensor, checked: whole numbers, in range, no repeats, not too many."""
    name = f"{ds.name} ({ds.split})" if ds is not None else "the split"
    values = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
    if not values:
        raise DataError("the list of image indices is empty")
    if len(values) > MAX_INDICES:
        raise DataError(f"at most {MAX_INDICES:,} image indices, not {len(values):,}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DataError("image indices must be whole numbers")
    bad = [v for v in values if not 0 <= v < total]
    if bad:
        raise DataError(f"image index {bad[0]} is out of range: {name} has {total:,} images (0 to {total - 1:,})")
    if len(set(values)) != len(values):
        raise DataError("an image index is listed twice")
    return torch.tensor(values, dtype=torch.long)


def read_indices_file(path: str | Path) -> list[int]:
    """Image indices from a file: whole numbers separated by spaces, commas or new lines; a JSON list;
    or an advlens report/JSON whose ``subset.indices`` (or ``indices``) holds them."""
    path = Path(path)
    try:
        if not path.is_file():
            raise DataError(f"no indices file {path}")
        if path.stat().st_size > MAX_INDICES_BYTES:
            raise DataError(f"{path} is larger than {MAX_INDICES_BYTES // 1024**2} MB; it is not a list of indices")
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the indices file {path}: {exc}") from None
    return parse_indices(text, str(path))


def parse_indices(text: str, what: str = "the indices") -> list[int]:
    """See :func:`read_indices_file`; ``text`` is the file's content."""
    if len(text) > MAX_INDICES_BYTES:
        raise DataError(f"{what} is too long to be a list of indices")
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        from ..safe_json import loads_limited

        try:
            data = loads_limited(stripped, what, MAX_INDICES_BYTES)
        except ValueError as exc:
            raise DataError(f"{what} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            sub = data.get("subset") if isinstance(data.get("subset"), dict) else data
            data = sub.get("indices")
        if not isinstance(data, list):
            raise DataError(f"{what}: expected a list of image indices (or a report with subset.indices)")
        values = data
    else:
        tokens = stripped.replace(",", " ").split()
        values = []
        for tok in tokens[: MAX_INDICES + 1]:
            if not tok.isdigit() or len(tok) > 9:
                raise DataError(f"{what}: {tok[:20]!r} is not an image index (a whole number >= 0)")
            values.append(int(tok))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DataError(f"{what}: image indices must be whole numbers")
    if not values:
        raise DataError(f"{what} holds no image index")
    return values


def indices_json(subset: Subset) -> str:
    """The subset's indices as the JSON that ``--indices`` reads back."""
    return json.dumps({"subset": subset.to_dict()})
