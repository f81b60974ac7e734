"""Widgets shared by the pages: device set-up, the model picker, the image picker, the
checkpoint loader, and the example shared between pages through session state.

No tensor math here: the widgets call the engine (advlens) and hand tensors to the pages.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from advlens.data import (
    DATASETS,
    SAMPLE_PHOTOS,
    UPLOAD_EXTENSIONS,
    DataError,
    ImageDataset,
    fit_image,
    load_dataset,
    load_upload,
    resize_batch,
    sample_photo,
)
from advlens.device import describe_device, force_cpu, get_device
from advlens.models import CheckpointError, Classifier
from advlens.models.defended import name_problem
from advlens.models.schema import MAX_CHECKPOINT_BYTES, MAX_METADATA_BYTES
from advlens.paths import HomeError
from advlens.safe_files import UnsafeFileError, read_small_file
from advlens.transforms import TransformError, list_transforms, split_name
from advlens.zoo import ZooEntry, get_entry, import_checkpoint, list_models, load_model, save_defense
from dashboard.url_state import apply_lesson_link

DEFAULT_MODEL = "digits_small_cnn"  # small and fast on any CPU: what a picker shows first
CURRENT_KEY = "advlens_current_example"
MEMO_KEY = "advlens_memo"


@dataclass
class Example:
    """An image picked by the user, ready for the model: x is (1, C, H, W) in [0,1] on the CPU."""

    x: torch.Tensor
    label: int
    title: str
    source: dict = field(default_factory=dict)


@dataclass
class CurrentExample:
    """The Attack Lab's latest example, shared with the Attention and Features pages."""

    model_name: str
    x: torch.Tensor
    label: int
    x_adv: torch.Tensor
    attack: str
    params: dict
    title: str


def configure_device() -> torch.device:
    """Honour ``streamlit run streamlit_app.py -- --cpu`` (ADVLENS_DEVICE=cpu works too)."""
    if "--cpu" in sys.argv[1:]:
        force_cpu()
    return get_device()


def page_setup(title: str, icon: str | None = None) -> None:
    """Title plus the sidebar's device line. Call first on every page.

    ``icon`` is accepted for symmetry with ``st.Page`` but not drawn: the navigation already shows
    each page's Material icon, and emoji fonts are missing on many headless machines.
    """
    apply_lesson_link()
    device = configure_device()
    st.sidebar.caption(f"Device: **{describe_device(device)}**")
    st.title(title)


@st.cache_resource(show_spinner="Loading model...", max_entries=8)
def cached_model(name: str, device: str, stamp: float) -> Classifier:
    """One loaded copy of each model per process. ``stamp`` (file mtime) invalidates it."""
    return load_model(name, device=device)


def _stamp(entry: ZooEntry) -> float:
    try:
        return entry.path.stat().st_mtime if entry.path else 0.0
    except OSError:
        return 0.0


def get_model(name: str) -> Classifier:
    """The shared copy of a zoo model (or of a defended ``base+chain`` model) for this process."""
    entry = get_entry(name)
    return cached_model(entry.name, str(get_device()), _stamp(entry))


# the picker's groups, in the order it lists them (ZooEntry.source -> group)
SOURCE_GROUPS = {
    "pretrained": "shipped",
    "asset": "shipped",
    "robustbench": "RobustBench",
    "imported": "imported",
    "run": "trained runs",
    "saved defense": "saved defenses",
}
NOT_DOWNLOADED = "RobustBench (not downloaded)"
GROUP_ORDER = ("shipped", "RobustBench", NOT_DOWNLOADED, "imported", "trained runs", "saved defenses")
ALL_SOURCES = "all"


def _group(entry: ZooEntry) -> str:
    return SOURCE_GROUPS.get(entry.source, entry.source)


def _published(name: str) -> str:
    """``; published clean 89.69%, AA 59.53%`` for a RobustBench entry ("" for any other model)."""
    from advlens.models.robustbench import get_catalog_entry, is_robustbench_name

    if not is_robustbench_name(name):
        return ""
    try:
        e = get_catalog_entry(name)
    except KeyError:
        return ""
    return f"; published clean {e.clean:.2f}%, AA {e.autoattack:.2f}%"


def model_picker(
    key: str = "model", label: str = "Model", entries: list[ZooEntry] | None = None
) -> tuple[str, Classifier] | tuple[None, None]:
    """A selectbox over the zoo, grouped by source (shipped, RobustBench, RobustBench not downloaded,
    imported, trained runs) with a source filter, and an optional chain of input transforms
    (``jpeg75+bits3``), synced with ``st.query_params[key]`` (``digits_small_cnn+jpeg75``). Without
    ``entries`` it lists the whole zoo plus the RobustBench entries not in the cache (their size, and a
    download box when one is chosen: :mod:`dashboard.model_download`). A RobustBench entry shows the
    figures RobustBench publishes. Shows the active model in the sidebar."""
    from advlens.models.robustbench import get_catalog_entry, is_robustbench_name
    from dashboard.model_download import download_box, downloaded_notice, missing_entries, published_text, size_text

    missing = {}
    if entries is None:
        entries = list_models()
        missing = {e.name: e for e in missing_entries({e.name for e in entries})}
    groups = {e.name: _group(e) for e in entries} | dict.fromkeys(missing, NOT_DOWNLOADED)
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    every = sorted(groups, key=lambda n: rank.get(groups[n], len(rank)))  # stable: the zoo's order in a group
    if not every:
        st.error("No models are available. Import a checkpoint on the Home page.")
        return None, None
    chain_key, source_key = f"{key}_defense", f"{key}_source"
    wanted = st.query_params.get(key)
    if key not in st.session_state:
        found, chain = resolve_model_name(wanted, every) if wanted else (None, "")
        st.session_state[key] = found or (DEFAULT_MODEL if DEFAULT_MODEL in every else every[0])
        st.session_state[chain_key] = chain
        if wanted and found is None:
            why = name_problem(wanted) or f"model {wanted[:80]!r} was not found"
            st.warning(f"{why[0].upper()}{why[1:]}; showing **{st.session_state[key]}** instead.")
    present = list(dict.fromkeys(groups[n] for n in every))
    names = every
    if len(present) > 1:
        counts = {g: sum(groups[n] == g for n in every) for g in present}
        if st.session_state.get(source_key) not in (ALL_SOURCES, *present):
            st.session_state[source_key] = ALL_SOURCES
        source = st.radio(
            f"{label}: source",
            [ALL_SOURCES, *present],
            key=source_key,
            horizontal=True,
            format_func=lambda g: f"all ({len(every)})" if g == ALL_SOURCES else f"{g} ({counts[g]})",
        )
        names = every if source == ALL_SOURCES else [n for n in every if groups[n] == source]
    if st.session_state[key] not in names:
        st.session_state[key] = names[0]
    describe = {e.name: f"{groups[e.name]} · {e.name}  ({e.arch}, {e.dataset}{_published(e.name)})" for e in entries}
    describe |= {
        n: f"{NOT_DOWNLOADED} · {n}  ({e.architecture}, {size_text(e)}{_published(n)})" for n, e in missing.items()
    }
    base = st.selectbox(label, names, key=key, format_func=lambda n: describe[n])
    if is_robustbench_name(base):
        try:
            st.caption(published_text(get_catalog_entry(base)))
        except KeyError:
            pass
    if base in missing:
        if st.query_params.get(key) != base:
            st.query_params[key] = base
        if download_box(missing[base], key):
            st.rerun()
        return None, None
    downloaded_notice(base)
    chain = st.text_input(
        "Input-transform defense (optional)",
        key=chain_key,
        placeholder="e.g. jpeg75 or bits3+median3",
        help="Put the model behind input transforms, joined by '+': "
        + "; ".join(f"`{c().token}` {c.title.lower()}" for c in list_transforms())
        + ". The attacks then need BPDA (non-differentiable transforms) and EOT (random ones) to break it.",
    ).strip()
    name = f"{base}+{chain}" if chain else base
    try:
        entry = get_entry(name)
    except KeyError as exc:
        st.error(f"Defense not understood: {exc.args[0]}")
        return None, None
    name = entry.name
    if st.query_params.get(key) != name:
        st.query_params[key] = name
    try:
        model = get_model(name)
    except (CheckpointError, OSError, RuntimeError, TransformError) as exc:
        st.error(f"Could not load {name}: {exc}")
        return None, None
    if chain:
        save_defense_control(key, name)
    st.sidebar.caption(f"Model: **{name}** · {model.spec.arch} · input {'x'.join(map(str, model.input_size))}")
    return name, model


def save_defense_control(key: str, name: str) -> None:
    """Save the current ``base+chain`` as a named zoo entry (a small recipe, not the weights)."""
    with st.popover("Save this defense"):
        title = st.text_input("Name", key=f"{key}_save_name", placeholder="my_jpeg_defense")
        if st.button("Save", key=f"{key}_save") and title.strip():
            try:
                saved = save_defense(title, name)
            except KeyError as exc:
                st.error(exc.args[0])
                return
            st.success(f"Saved as **{saved.name}**: it is in every model picker now.")


def resolve_model_name(wanted: str, names: list[str]) -> tuple[str | None, str]:
    """(zoo name, chain of input transforms) from a link: the name itself, a training run's id
    (``a0b5e4`` -> ``run-a0b5e4-pgd_at``), either followed by ``+jpeg75...``; (None, "") when
    nothing matches."""
    base, sep, chain = wanted.partition("+")
    if name_problem(wanted):  # too long, or an empty transform (digits_small_cnn+): never the bare base
        return None, ""
    if sep:
        try:
            split_name(wanted)
        except TransformError:
            return None, ""
    if base in names:
        return base, chain
    runs = [n for n in names if n.startswith(f"run-{base}-")]
    return (runs[0], chain) if len(runs) == 1 else (None, "")


@st.cache_resource(show_spinner="Loading dataset...", max_entries=6)
def cached_dataset(name: str, split: str, root: str | None) -> ImageDataset:
    return load_dataset(name, split=split, root=root)


def compatible_datasets(model: Classifier) -> list[str]:
    return [d.name for d in DATASETS.values() if d.input_size == tuple(model.input_size) or d.name == "folder"]


def _label_for(model: Classifier, ds: ImageDataset, label: int) -> int:
    """The dataset label as a model class index, or -1 when the class sets differ."""
    if 0 <= label < len(ds.class_names) and tuple(ds.class_names) == tuple(model.class_names):
        return label
    return -1


def _dataset_samples(model: Classifier, ds: ImageDataset, titles: list[str]) -> list[tuple[str, torch.Tensor, int]]:
    out = []
    for i, title in enumerate(titles):
        x, y = ds.item(i)
        out.append((title, resize_batch(x, model.input_size), _label_for(model, ds, y)))
    return out


def _digits_samples(model: Classifier) -> list[tuple[str, torch.Tensor, int]]:
    ds = cached_dataset("digits", "test", None)
    firsts = {}
    for i, y in enumerate(ds.labels.tolist()):
        firsts.setdefault(y, i)
    out = []
    for y, i in sorted(firsts.items()):
        x, _ = ds.item(i)
        out.append((f"digit {y} (digits test #{i})", resize_batch(x, model.input_size), _label_for(model, ds, y)))
    return out


@st.cache_data(show_spinner=False, max_entries=8)
def _photo_samples(size: tuple, imagenet: bool) -> list[tuple[str, torch.Tensor, int]]:
    """The sample photos fitted to ``size`` (decoded once per process, not on every rerun)."""
    return [
        (f"photo: {n}", fit_image(sample_photo(n), size).unsqueeze(0), SAMPLE_PHOTOS[n] if imagenet else -1)
        for n in SAMPLE_PHOTOS
    ]


def _samples(model: Classifier) -> list[tuple[str, torch.Tensor, int]]:
    """Offline sample images suited to ``model``: its own dataset's first (MNIST, CIFAR-10 or the 8x8
    digits), then the other grey set for 1-channel models; photos for the rest."""
    c = model.input_size[0]
    if c == 1:
        mnist = cached_dataset("mnist_samples", "test", None)
        sets = [_digits_samples(model), _dataset_samples(model, mnist, mnist.item_names)]
        return [s for part in (sets[::-1] if model.spec.dataset == "mnist" else sets) for s in part]
    photos = _photo_samples(tuple(model.input_size), len(model.class_names) == 1000)
    if tuple(model.input_size) == (3, 32, 32):
        cifar = cached_dataset("cifar10_samples", "test", None)
        return _dataset_samples(model, cifar, cifar.item_names) + photos
    return photos


def image_picker(model: Classifier, key: str = "image") -> Example | None:
    """Pick a sample, a dataset item by index, or an upload. Errors are shown, and None returned."""
    sources = ["Sample", "Dataset item", "Upload"]
    qp_src = st.query_params.get(f"{key}_src")
    if f"{key}_src" not in st.session_state:
        st.session_state[f"{key}_src"] = qp_src if qp_src in sources else "Sample"
    src = st.radio("Image", sources, key=f"{key}_src", horizontal=True)
    st.query_params[f"{key}_src"] = src
    if src == "Sample":
        samples = _samples(model)
        titles = [s[0] for s in samples]
        qp = st.query_params.get(f"{key}_sample")
        if f"{key}_sample" not in st.session_state or st.session_state[f"{key}_sample"] not in titles:
            st.session_state[f"{key}_sample"] = qp if qp in titles else titles[0]
        title = st.selectbox("Sample", titles, key=f"{key}_sample")
        st.query_params[f"{key}_sample"] = title
        _, x, label = samples[titles.index(title)]
        return Example(x, label, title, {"kind": "sample", "name": title})
    if src == "Dataset item":
        return _dataset_item(model, key)
    return _upload(model, key)


def _dataset_item(model: Classifier, key: str) -> Example | None:
    names = compatible_datasets(model)
    qp = st.query_params.get(f"{key}_ds")
    if f"{key}_ds" not in st.session_state:
        st.session_state[f"{key}_ds"] = qp if qp in names else names[0]
    cols = st.columns([2, 1, 1])
    name = cols[0].selectbox(
        "Dataset", names, key=f"{key}_ds", format_func=lambda n: f"{n} — {DATASETS[n].description}"
    )
    split = cols[1].selectbox("Split", ["test", "train"], key=f"{key}_split")
    root = None
    if not DATASETS[name].offline:
        root = (
            st.text_input(
                "Local folder with the files",
                key=f"{key}_root",
                help="MNIST: the *-ubyte.gz files; CIFAR-10: cifar-10-python.tar.gz; folder: root/<class>/<images>",
            ).strip()
            or None
        )
    try:
        ds = cached_dataset(name, split, root)
    except DataError as exc:
        st.error(str(exc))
        return None
    qp_idx = st.query_params.get(f"{key}_idx")
    if f"{key}_idx" not in st.session_state:
        st.session_state[f"{key}_idx"] = int(qp_idx) if (qp_idx or "").isdigit() else 0
    index = cols[2].number_input(f"Index (0-{len(ds) - 1})", min_value=0, step=1, key=f"{key}_idx")
    st.query_params[f"{key}_ds"], st.query_params[f"{key}_idx"] = name, str(index)
    try:
        x, y = ds.item(int(index))
    except DataError as exc:
        st.error(str(exc))
        return None
    if tuple(x.shape[1:]) != tuple(model.input_size):
        st.error(
            f"{name} images are {'x'.join(map(str, x.shape[1:]))}, but the model expects "
            f"{'x'.join(map(str, model.input_size))}. Pick a dataset that fits the model."
        )
        return None
    return Example(
        x,
        _label_for(model, ds, y),
        ds.item_name(int(index)),
        {"kind": "dataset", "dataset": name, "split": split, "index": int(index), "root": root},
    )


def _upload(model: Classifier, key: str) -> Example | None:
    up = st.file_uploader("PNG, JPEG, WebP or BMP", type=UPLOAD_EXTENSIONS, key=f"{key}_upload")
    if up is None:
        st.info("Upload an image to continue.")
        return None
    mode = st.radio(
        "Fit to the model input",
        ["center_crop", "resize"],
        horizontal=True,
        key=f"{key}_fit",
        format_func=lambda m: "centre-crop" if m == "center_crop" else "resize (squash)",
    )
    notes: list[str] = []
    try:
        x = load_upload(
            up.getvalue(),
            model.input_size,
            name=up.name,
            mode=mode,
            invert_if_light=model.input_size[0] == 1,
            notes=notes,
        )
    except DataError as exc:
        st.error(str(exc))
        return None
    for note in notes:
        st.info(note)
    options = ["unknown (use the prediction)"] + list(model.class_names)
    choice = st.selectbox("True class", options, key=f"{key}_label")
    label = options.index(choice) - 1
    return Example(x, label, up.name, {"kind": "upload", "name": up.name})


def set_current_example(example: CurrentExample) -> None:
    st.session_state[CURRENT_KEY] = example


def get_current_example() -> CurrentExample | None:
    return st.session_state.get(CURRENT_KEY)


def checkpoint_loader() -> None:
    """Import a checkpoint from an upload or a path into the user's models. Nothing is executed."""
    tab_up, tab_path = st.tabs(["Upload", "Path"])
    replace = st.checkbox(
        "Replace an imported model of the same name",
        key="ckpt_replace",
        help="Off: a name the zoo has already is refused. On: an earlier import of that name is replaced for "
        "every session (shipped and pretrained models are never replaced).",
    )
    with tab_up:
        weights = st.file_uploader(
            "Weights (.safetensors) or a torch.export program (.pt2)", type=["safetensors", "pt2"], key="ckpt_weights"
        )
        meta = st.file_uploader(
            "Metadata (.json, optional if embedded; for a .pt2: class_names, mean, std, dataset, cam_layer)",
            type=["json"],
            key="ckpt_meta",
        )
        if weights is not None and st.button("Import checkpoint", key="ckpt_import_upload"):
            _import(weights.getvalue(), meta.getvalue() if meta else None, weights.name, replace)
    with tab_path:
        path = st.text_input("Path to a .safetensors or .pt2 file (its .json beside it)", key="ckpt_path").strip()
        if path and st.button("Import from path", key="ckpt_import_path"):
            p = Path(path).expanduser()
            weights_path = p if p.suffix in (".safetensors", ".pt2") else p.with_suffix(".safetensors")
            meta_path = weights_path.with_suffix(".json")
            try:  # regular files within the size limits, never a pipe or a device
                blob = read_small_file(weights_path, MAX_CHECKPOINT_BYTES, str(weights_path))
                meta_blob = read_small_file(meta_path, MAX_METADATA_BYTES) if os.path.lexists(meta_path) else None
            except UnsafeFileError as exc:
                st.error(f"Not imported: {exc}")
                return
            _import(blob, meta_blob, weights_path.name, replace)


def _import(weights: bytes, meta: bytes | None, name: str, replace: bool = False) -> None:
    try:
        entry = import_checkpoint(weights, meta, name, replace=replace)
    except (CheckpointError, HomeError) as exc:
        st.error(f"Not imported: {exc}")
        return
    st.success(f"Imported **{entry.name}** ({entry.arch}, {entry.dataset}). It is now in every model picker.")


def memo_get(key: tuple):
    """A result this session computed earlier for ``key`` (see :func:`session_memo`), or None."""
    store: OrderedDict = st.session_state.setdefault(MEMO_KEY, OrderedDict())
    if key in store:
        store.move_to_end(key)
        return store[key]
    return None


def memo_put(key: tuple, value, size: int = 12) -> None:
    store: OrderedDict = st.session_state.setdefault(MEMO_KEY, OrderedDict())
    store[key] = value
    store.move_to_end(key)
    while len(store) > size:
        store.popitem(last=False)


def session_memo(key: tuple, compute: Callable[[], object], size: int = 12):
    """This session's last ``size`` expensive results (attacks, views), keyed by their inputs.

    Streamlit reruns the page on every widget change; the memo keeps a result until its inputs
    change. Results hold tensors, so they stay per session instead of in ``st.cache_data``.
    """
    value = memo_get(key)
    if value is None:
        value = heavy(compute)
        memo_put(key, value, size)
    return value


def heavy(compute: Callable[[], object]):
    """Run one heavy engine call under the CPU policy (:mod:`advlens.threads`): it waits for a free
    slot, with its place in line shown, and runs with the policy's torch threads."""
    from advlens.threads import interactive

    box = None

    def waiting(place: int) -> None:
        nonlocal box
        box = box or st.empty()
        box.caption(f"Waiting for the CPU: number {place} in line (other sessions are computing).")

    with interactive(waiting):
        if box is not None:
            box.empty()
        return compute()


def empty_map_notice(empty, key: str, apply_fix: Callable[[object], None] | None = None) -> None:
    """One line when a map is empty (an :class:`advlens.attribution.empty.EmptyMap`; nothing for None):
    which map, why, and one button per fix that was checked to show something on the same image.
    ``apply_fix(fix)`` runs on the click, before the rerun, and puts the fix in the page's settings."""
    if empty is None:
        return
    offer = " One click shows instead:" if empty.fixes and apply_fix is not None else ""
    st.warning(empty.message() + offer, icon="⚠️")
    if not offer:
        return
    for col, (i, fix) in zip(st.columns(len(empty.fixes)), enumerate(empty.fixes)):
        col.button(fix.label, key=f"{key}_fix_{i}", on_click=apply_fix, args=(fix,))
