"""The model picker: the zoo grouped by source, input-transform chains, and one shared copy of each
model per process (:func:`get_model`)."""

from __future__ import annotations

import streamlit as st

from advlens.device import get_device
from advlens.models import CheckpointError, Classifier
from advlens.models.defended import name_problem
from advlens.transforms import TransformError, list_transforms, split_name
from advlens.zoo import ZooEntry, get_entry, list_models, load_model, save_defense

DEFAULT_MODEL = "digits_small_cnn"  # small and fast on any CPU: what a picker shows first


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
