"""The image picker (a sample, a dataset item or an upload) and the example the Attack Lab shares with
the Attention and Features pages through session state."""

from __future__ import annotations

from dataclasses import dataclass, field

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
from advlens.models import Classifier

CURRENT_KEY = "advlens_current_example"


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


def sample_images(model: Classifier) -> list[tuple[str, torch.Tensor, int]]:
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
        samples = sample_images(model)
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
