"""The Evaluate page's common-corruptions section (issue 28): a grid of examples and the 15 x 5 accuracies.

The corruptions are :mod:`advlens.corruptions` (Hendrycks and Dietterich 2019's CIFAR-10-C
definitions, generated on the fly; frost uses a procedural texture, motion blur an OpenCV line
kernel). The accuracies run here on up to 200 images chosen by the one subset rule; for more, use
``python -m advlens evaluate --suite corruptions``. The page does no tensor math.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from advlens.attribution.display import enlarge, image_rgb
from advlens.corruptions import CORRUPTIONS, NAMES, SEVERITIES, example_grid
from advlens.data import DataError, to_float
from advlens.data.catalog import DATASETS
from advlens.data.subset import choose_images
from advlens.evaluation.corruption_suite import evaluate_corruptions
from advlens.zoo import list_models
from dashboard.image_picker import cached_dataset
from dashboard.model_picker import get_model

MAX_IMAGES = 200


def corruption_section() -> None:
    st.caption(
        "Accuracy under the 15 common corruptions of CIFAR-10-C at 5 severities (Hendrycks and Dietterich 2019; "
        "RobustBench's `corruptions` threat model), generated on the fly from any dataset with a fixed seed. "
        "Not a replica of the published files where marked *: frost uses a procedural frost texture, motion "
        "blur and snow an OpenCV line kernel instead of ImageMagick's. "
        "The CLI: `python -m advlens evaluate --suite corruptions --model M --dataset D`."
    )
    entries = [e for e in list_models() if e.input_size is not None]
    datasets = [d for d in DATASETS.values() if d.name not in ("folder", "imagenet_samples")]
    with st.form("cc_form"):
        cols = st.columns(4)
        names = [e.name for e in entries]
        default = next((i for i, e in enumerate(entries) if e.name == "cifar10_resnet20"), 0)
        model_name = cols[0].selectbox("Model", names, index=default, key="cc_model")
        ds_names = [d.name for d in datasets]
        ds_default = ds_names.index("cifar10_samples") if "cifar10_samples" in ds_names else 0
        ds_name = cols[1].selectbox("Dataset", ds_names, index=ds_default, key="cc_dataset")
        n = int(cols[2].number_input("images", 1, MAX_IMAGES, 50, key="cc_n"))
        seed = int(cols[3].number_input("corruption seed", 0, 2**31 - 1, 0, key="cc_seed"))
        c1, c2 = st.columns(2)
        show = c1.form_submit_button("Show examples", key="cc_show")
        run = c2.form_submit_button("Measure the accuracies", key="cc_run")
    if not (show or run) and "cc_result" not in st.session_state:
        return
    try:
        ds = cached_dataset(ds_name, "test", None)
        subset = choose_images(ds, n)
        x, y = ds.batch(subset.indices)
        x = to_float(x)
        if show or "cc_grid" not in st.session_state:
            st.session_state["cc_grid"] = (int(subset.indices[0]), example_grid(x[0], seed, int(subset.indices[0])))
        if run:
            model = get_model(model_name)
            if tuple(x.shape[1:]) != tuple(model.input_size):
                raise ValueError(f"{ds_name} images are {tuple(x.shape[1:])}; {model_name} expects {model.input_size}")
            bar = st.progress(0.0, text="corrupting and classifying")
            res = evaluate_corruptions(
                model,
                x,
                y,
                keys=subset.indices.tolist(),
                seed=seed,
                progress=lambda d, t: bar.progress(d / t, text=f"{d} of {t} corruption x severity cells"),
            )
            bar.empty()
            st.session_state["cc_result"] = (model_name, subset.describe(), res.to_dict())
    except (DataError, ValueError, KeyError) as exc:
        st.error(str(exc))
        return
    grid = st.session_state.get("cc_grid")
    if grid is not None:
        index, images = grid
        st.markdown(f"**Image {index} of {ds_name}, severities 1 to 5** (seed {seed})")
        for name in NAMES:
            cols = st.columns([2] + [1] * len(SEVERITIES))
            mark = "" if CORRUPTIONS[name].exact else " *"
            cols[0].write(CORRUPTIONS[name].title + mark)
            for s, col in zip(SEVERITIES, cols[1:]):
                col.image(enlarge(image_rgb(images[name][s - 1]), 64), width="stretch")
    found = st.session_state.get("cc_result")
    if found is None:
        return
    model_name, images_text, rep = found
    table = pd.DataFrame(
        {
            f"severity {s}": [rep["corruptions"][c]["severities"][s - 1]["accuracy"] * 100 for c in rep["corruptions"]]
            for s in SEVERITIES
        },
        index=[CORRUPTIONS[c].title + ("" if CORRUPTIONS[c].exact else " *") for c in rep["corruptions"]],
    )
    table["mean"] = [rep["corruptions"][c]["mean"] * 100 for c in rep["corruptions"]]
    lo, hi = rep["mean_interval_95"]
    st.metric(
        f"{model_name}: mean corruption accuracy (mCA)",
        f"{rep['mean_corruption_accuracy'] * 100:.1f}%",
        help="The mean over the 15 x 5 cells; its 95% interval treats the images as the independent units.",
    )
    st.dataframe(table.style.format("{:.1f}%"), width="stretch")
    st.caption(
        f"{rep['protocol']}. {images_text[:1].upper()}{images_text[1:]}. mCA 95% interval [{lo * 100:.1f}, "
        f"{hi * 100:.1f}]; clean accuracy {rep['clean_accuracy'] * 100:.1f}%; each cell's own 95% interval is in "
        "the CLI's JSON report (Clopper-Pearson)."
    )
