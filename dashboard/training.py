"""Training: configure and start runs (standard and adversarial training), watch them live, cancel
and resume them. Each run trains in its own OS process (``python -m advlens train --run-id ID``);
this page only reads and writes the run store, so a run goes on when the tab closes or the server
restarts. The selected run is kept in the URL (``?run=<id>``).

The form has one widget per field of the training configuration, built from its one declaration
(:data:`advlens.training.config.FIELDS`: label, help, range, section) by :func:`dashboard.params.field_input`;
this page adds only what depends on the moment: the dataset's recommended values, the zoo's models,
the devices present."""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st
import torch

from advlens.data import DATASETS
from advlens.jobs.store import RunRecord, RunStore, read_log_tail
from advlens.models import ARCHITECTURES
from advlens.params import Param, ParamError
from advlens.training import jobs
from advlens.training.config import FIELDS, ConfigError, TrainConfig, recommended_for_dataset
from advlens.training.objectives import Objective, list_objectives
from advlens.zoo import list_models
from dashboard.job_panel import rerun_when_finished, resume_button, stop_button
from dashboard.params import field_input, param_inputs, seed_from_url, write_to_url
from dashboard.run_store import open_store
from dashboard.widgets import page_setup

URL_READ_KEY = "tr_url_read"
TRAINABLE_DATASETS = [n for n, d in DATASETS.items() if d.trainable]
TRAINABLE_ARCHS = [a for a in ARCHITECTURES if a != "efficientnet_lite0"]
SCHEDULE_HELP = {
    "constant": "constant",
    "step": "step decay (x0.1 at 50% and 75%; see More settings)",
    "cosine": "cosine annealing",
    "onecycle": "one-cycle (Smith)",
    "cyclic": "cyclic triangle 0 -> lr -> 0 (Fast-AT)",
}


def objective_header(cls: type[Objective]) -> None:
    st.latex(cls.formula)
    source = cls.source
    if cls.arxiv:  # the arXiv id in the source becomes its link (it was shown twice)
        link = f"[arXiv {cls.arxiv}](https://arxiv.org/abs/{cls.arxiv})"
        source = source.replace(f"arXiv {cls.arxiv}", link) if f"arXiv {cls.arxiv}" in source else f"{source} · {link}"
    st.caption(f"Source: {source}")
    if cls.notes:
        st.info(cls.notes)


def init_choices(dataset: str, fine_tunes: bool) -> tuple[list[str], int]:
    """The models a run can start from ("" = a fresh initialisation) and the preselected one: for a
    fine-tuning objective, the first clean model of the dataset (the shipped one, then standard runs)."""
    entries = [  # weights to start from: a saved defense is a recipe over another model, not weights of its own
        e for e in list_models() if e.path is not None and e.arch in TRAINABLE_ARCHS and e.source != "saved defense"
    ]
    names = [""] + [e.name for e in entries]
    if fine_tunes:
        clean = [
            e.name for e in entries if e.dataset == dataset and (e.source == "asset" or e.name.endswith("-standard"))
        ]
        if clean:
            return names, names.index(clean[0])
    return names, 0


# The form's sections, in order: (title, columns). Their fields, labels, help, ranges and defaults
# come from the one declaration, advlens.training.config.FIELDS (each field's `group`).
GROUPS = {
    "data": ("", 2),
    "model": ("", 4),
    "init": ("", 2),
    "optimiser": ("", 4),
    "adversary": ("", 4),
    "objective": ("", 0),  # the objective's own hyperparameters (objective_params)
    "evaluation": ("**Evaluation and limits**", 5),
    "run": ("", 2),
    "more": ("More settings: optimiser details, logging, checkpoints, CUDA", 4),  # folded
}
# Sections whose defaults depend on the objective and the dataset (recommended values): their
# widgets are keyed per (objective, dataset), so a new choice starts from its own defaults.
PER_CHOICE = ("model", "init", "optimiser", "adversary")


def by_group() -> dict[str, list[Param]]:
    groups: dict[str, list[Param]] = {g: [] for g in (*GROUPS, "top")}
    for prm in FIELDS:
        groups[prm.group].append(prm)
    return groups


class FormContext:
    """What the form's widgets need beyond the declaration: keys, defaults and the page's choices."""

    def __init__(self, cls: type[Objective], dataset: str, first: bool):
        self.cls, self.dataset, self.first = cls, dataset, first
        self.k = f"{cls.name}_{dataset}"
        family = cls.family(dataset)
        self.inits, init_index = init_choices(dataset, cls.fine_tunes)
        self.no_clean_model = cls.fine_tunes and init_index == 0
        self.defaults = {
            **TrainConfig().to_dict(),
            **recommended_for_dataset(dataset),
            "batch_size": 64 if family == "mnist" else 128,
            "init_from": self.inits[init_index],
        }
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        self.choices = {"arch": TRAINABLE_ARCHS, "init_from": self.inits, "device": devices}
        self.formats = {"schedule": lambda s: SCHEDULE_HELP[s], "init_from": lambda n: n or "a fresh initialisation"}
        init_help = "fine-tune a trained model of the zoo (same architecture, input size and classes)"
        self.helps = {"init_from": init_help + (f"; {cls.title} starts from a clean model" if cls.fine_tunes else "")}

    def widget(self, prm: Param, box):
        """The field's widget in ``box``; its value, or raises :class:`ParamError`."""
        if prm.group == "data":  # a folder of this dataset (not in the link)
            key, url_key, read_url = f"tr_{prm.short}_{self.dataset}", None, False
        elif prm.group in PER_CHOICE:  # the link is read once per session (``first``)
            key, url_key, read_url = f"tr_{prm.short}_{self.k}", f"tr_{prm.short}", self.first
        else:
            key = url_key = f"tr_{prm.short}"
            read_url = True
        return field_input(
            prm,
            key,
            self.defaults.get(prm.name),
            box,
            url_key=url_key,
            read_url=read_url,
            choices=self.choices.get(prm.name),
            format_func=self.formats.get(prm.name),
            help=self.helps.get(prm.name),
        )


def field_row(fields: list[Param], columns: int, ctx: FormContext, values: dict, problems: list[str]) -> None:
    """The widgets of ``fields`` in rows of ``columns``; values and problems are collected."""
    cols = st.columns(max(1, min(columns, len(fields))))
    for i, prm in enumerate(fields):
        try:
            values[prm.name] = ctx.widget(prm, cols[i % len(cols)])
        except ParamError as exc:
            problems.append(str(exc))


def hyperparameter_inputs(ctx: FormContext, values: dict, problems: list[str]) -> None:
    """``objective_params``: one widget per hyperparameter the objective declares (in the link as tr_hp_*)."""
    cls, prefix = ctx.cls, f"tr_hp_{ctx.k}"
    values["objective_params"] = {}
    if not cls.hyperparams:
        return
    st.markdown(f"**{cls.title}: hyperparameters**")
    if ctx.first:
        seed_from_url(cls.hyperparams, prefix, "tr_hp_")
    params, errors = param_inputs(cls.hyperparams, prefix, cls.defaults(ctx.dataset))
    write_to_url(cls.hyperparams, params, "tr_hp_")
    values["objective_params"] = params
    problems.extend(errors)


def form_fields(ctx: FormContext, values: dict, problems: list[str]) -> None:
    """Every field of the declaration but the objective and the dataset, section by section."""
    groups = by_group()
    for group, (title, columns) in GROUPS.items():
        fields = groups[group]
        if group == "data" and DATASETS[ctx.dataset].offline:
            continue  # shipped with the package: no folder, no download
        if group == "init" and ctx.no_clean_model:
            st.info(
                f"{ctx.cls.title} fine-tunes a clean model, and none of {ctx.dataset} is in the zoo yet: train a "
                f"standard run on {ctx.dataset} first, then pick it under **Start from** (or start from a fresh "
                "initialisation)."
            )
        if group == "objective":
            hyperparameter_inputs(ctx, values, problems)
        elif group == "more":
            with st.expander(title):
                field_row(fields, columns, ctx, values, problems)
        else:
            if title:
                st.markdown(title)
            field_row(fields, columns, ctx, values, problems)


def new_run_form(store: RunStore) -> None:
    objectives = {cls.name: cls for cls in list_objectives()}
    names = list(objectives)
    top = {prm.name: prm for prm in by_group()["top"]}
    c1, c2 = st.columns(2)
    obj_name = field_input(
        top["objective"],
        "tr_objective",
        "pgd_at" if "pgd_at" in names else names[0],
        c1,
        url_key="tr_objective",
        choices=names,
        format_func=lambda n: objectives[n].title,
    )
    dataset = field_input(
        top["dataset"],
        "tr_dataset",
        TRAINABLE_DATASETS[0],
        c2,
        url_key="tr_dataset",
        choices=TRAINABLE_DATASETS,
        format_func=lambda n: f"{n} — {DATASETS[n].description}",
    )
    cls = objectives[obj_name]
    objective_header(cls)
    # The link is read once per session: afterwards a new objective or dataset starts from its own defaults.
    ctx = FormContext(cls, dataset, first=not st.session_state.get(URL_READ_KEY, False))
    values: dict = {"objective": obj_name, "dataset": dataset}
    problems: list[str] = []
    with st.form("tr_form", enter_to_submit=False):  # only the Start button starts a run
        form_fields(ctx, values, problems)
        submitted = st.form_submit_button("Start", type="primary")
    st.session_state[URL_READ_KEY] = True
    if submitted:
        start_run(store, values, problems)


def start_run(store: RunStore, values: dict, problems: list[str]) -> None:
    if problems:
        st.error("The run was not started:\n\n" + "\n\n".join(f"- {p}" for p in problems))
        return
    try:
        rec_run = jobs.submit(TrainConfig.from_dict(values), store)
    except jobs.DuplicateRun as exc:
        st.query_params["run"] = exc.run.id
        st.session_state["tr_run"] = exc.run.id
        st.info(f"Not started again: this configuration is already {exc.run.status} as run **{exc.run.id}**.")
        return
    except ConfigError as exc:
        st.error(f"The run was not started:\n\n{exc}")
        return
    except OSError as exc:
        st.error(f"Could not start the worker process: {exc}")
        return
    st.query_params["run"] = rec_run.id
    st.session_state["tr_run"] = rec_run.id
    st.success(f"Run **{rec_run.id}** is {rec_run.status} (worker pid {rec_run.pid}). Its curves are below.")


def run_id_of(ref: str, ids: list[str]) -> str | None:
    """A run id from ``?run=``: the id itself or the zoo name ``run-<id>-<objective>``."""
    ref = ref.strip()
    if ref in ids:
        return ref
    parts = ref.split("-")
    return parts[1] if len(parts) >= 3 and parts[0] == "run" and parts[1] in ids else None


# ------------------------------------------------------------------------------- runs table
def runs_table(runs: list[RunRecord]) -> None:
    rows = []
    for r in runs:
        acc, rob = r.metrics.get("test_accuracy"), r.metrics.get("heldout_robust_accuracy")
        rows.append(
            {
                "id": r.id,
                "status": r.status,
                "objective": r.objective,
                "dataset": r.dataset,
                "model": r.arch,
                "progress": round(100 * r.progress, 1),
                "test acc": f"{acc * 100:.1f}%" if isinstance(acc, float) else "",
                "PGD acc, held-out (upper bound)": f"{rob * 100:.1f}%" if isinstance(rob, float) else "",
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at)),
                "message": r.message[:120],
            }
        )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100, format="%.0f%%")
        },
    )


def live_runs_table(store: RunStore) -> None:
    runs_table(store.list_runs())


def _figure(metrics: dict, keys: list[str], title: str, ytitle: str, percent: bool = False) -> go.Figure | None:
    fig = go.Figure()
    for key in keys:
        s = metrics.get(key)
        if not s:
            continue
        ys = [v * 100 if (percent and v is not None) else v for v in s["value"]]
        fig.add_trace(
            go.Scatter(
                x=s["step"],
                y=ys,
                mode="lines+markers" if len(ys) < 60 else "lines",
                name=key.split("/", 1)[-1] if key.count("/") else key,
            )
        )
    if not fig.data:
        return None
    fig.update_layout(
        title=title,
        height=260,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis_title="step",
        yaxis_title=ytitle,
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_details(store: RunStore, run_id: str, objectives: dict[str, type[Objective]]) -> None:
    """The live part: status, buttons, curves and the log tail of one run."""
    store.reap_dead()
    rec = store.get(run_id)
    if rec is None:
        st.warning(f"Run {run_id} is no longer in the store.")
        return
    rerun_when_finished("tr_active_runs", [rec])  # it ended: refresh the table, and stop the auto-refresh
    m = store.metrics(run_id)
    last = {k: v["value"][-1] for k, v in m.items() if v["value"]}
    cols = st.columns(6)
    cols[0].metric("Status", rec.status)
    cols[1].metric("Step", f"{rec.step}/{rec.total_steps or '?'}")
    cols[2].metric("ETA", _fmt_s(rec.eta_s) if rec.status == "running" else "—")
    cols[3].metric("Throughput", f"{last['img_per_s']:.0f} img/s" if "img_per_s" in last else "—")
    mem_label = "GPU memory (max)" if rec.device.startswith("cuda") else "Memory (RSS)"
    cols[4].metric(mem_label, f"{last['mem_mb']:.0f} MB" if "mem_mb" in last else "—")
    rob = last.get("eval/robust_acc")
    pgd = f"PGD-{rec.config.get('eval_steps', '?')}"
    cols[5].metric(
        f"{pgd} acc (held-out)",
        f"{rob * 100:.1f}%" if rob is not None else "—",
        help=f"{pgd} with the cross-entropy loss at the training eps on the held-out batch: an upper bound "
        "on robust accuracy. `python -m advlens evaluate` measures it with an attack suite.",
    )
    st.progress(
        rec.progress,
        text=f"{rec.objective} on {rec.dataset} · {rec.arch} · device {rec.device}"
        f"{' · ' + rec.message if rec.message else ''}",
    )
    b1, b2, _ = st.columns([1, 1, 4])
    toast = f"Cancel requested for {run_id}; it stops after the current step, with a checkpoint."
    stop_button(rec, store, b1, f"tr_cancel_{run_id}", "Cancel", toast=toast)
    resume_button(rec, store, b2, f"tr_resume_{run_id}")
    if rec.status == "done":
        acc = rec.metrics.get("test_accuracy")
        st.success(
            f"Finished. The model is **{rec.zoo_name}** in the model zoo: pick it in the Attack Lab, "
            f"Attention or Compare pages." + (f" Test accuracy {acc * 100:.2f}%." if isinstance(acc, float) else "")
        )
    charts = [
        _figure(m, ["train/loss"], "Training loss", "loss"),
        _figure(
            m,
            ["train/acc", "train/acc_adv", "eval/clean_acc", "eval/robust_acc"],
            f"Accuracy (train batches; held-out batch: clean and {pgd}, an upper bound on robust accuracy)",
            "%",
            percent=True,
        ),
        _figure(m, ["img_per_s"], "Throughput", "images / s"),
        _figure(m, ["mem_mb"], mem_label, "MB"),
        _figure(m, ["eta_s"], "ETA", "seconds"),
        _figure(m, ["lr"], "Learning rate", "lr"),
    ]
    cls = objectives.get(rec.objective)
    for title, keys in cls.extra_plots.items() if cls else []:
        charts.append(_figure(m, list(keys), title, "", percent=any("acc" in k for k in keys)))
    charts = [c for c in charts if c is not None]
    if not charts:
        st.info(
            "No metrics yet: the run is starting (loading data, building the model)."
            if rec.active
            else "This run logged no metrics."
        )
    for i in range(0, len(charts), 2):
        cs = st.columns(2)
        for col, fig in zip(cs, charts[i : i + 2]):
            col.plotly_chart(fig, width="stretch", key=f"tr_chart_{run_id}_{i}_{fig.layout.title.text}")
    snapshots_view(rec, run_id)
    with st.expander("Log (tail)", expanded=rec.status == "failed"):
        st.code(read_log_tail(rec.log_path, 40) or "(empty)", language=None)
    with st.expander("Configuration"):
        st.json(rec.config)
        st.caption(f"Same run from the shell: `python -m advlens train --config {rec.folder / 'config.json'}`")


def snapshots_view(rec, run_id: str) -> None:
    """Images an objective saved per epoch (e.g. the attention defense's CAMs of a fixed batch)."""
    snaps = sorted((rec.folder / "snapshots").glob("*.png"))
    if not snaps:
        return
    with st.expander("Snapshots of a fixed batch, per epoch", expanded=True):
        names = [p.stem for p in snaps]
        pick = (
            names[-1]
            if len(names) == 1
            else st.select_slider("Snapshot", names, value=names[-1], key=f"tr_snap_{run_id}")
        )
        st.image(
            str(rec.folder / "snapshots" / f"{pick}.png"),
            caption="columns: images; rows: clean, clean map, adversarial (red frame: misclassified), adversarial map",
        )


def render() -> None:
    page_setup("Training")
    st.markdown(
        "Train a model with standard or adversarial training. Each run trains in a background process; "
        "it survives closing this tab and restarting the server. Finished runs join the model zoo."
    )
    store = open_store()
    if store is None:
        return
    objectives = {cls.name: cls for cls in list_objectives()}
    runs = store.list_runs()
    # decided once per session: a changing `expanded` would fold the form while the user fills it
    expanded = st.session_state.setdefault("tr_form_open", not runs or "run" not in st.query_params)
    with st.expander("New run", expanded=expanded):
        new_run_form(store)
    runs = store.list_runs()
    st.subheader("Runs")
    if not runs:
        st.info("No runs yet. Configure one above and press Start.")
        return
    # the table refreshes itself while a run is queued or training (status, progress, accuracies)
    st.fragment(run_every=2 if any(r.active for r in runs) else None)(live_runs_table)(store)
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    wanted = run_id_of(st.query_params.get("run") or "", ids)
    if st.query_params.get("run") and wanted is None:
        st.warning(f"Run {st.query_params.get('run')!r} was not found; showing the latest run.")
    if st.session_state.get("tr_run") not in ids:
        st.session_state["tr_run"] = wanted or ids[0]
    # The label names a run as the zoo does; its status is shown live below (a label would go stale).
    run_id = st.selectbox(
        "Run",
        ids,
        key="tr_run",
        format_func=lambda i: (
            f"{by_id[i].zoo_name} · {by_id[i].dataset}{' · ' + by_id[i].name if by_id[i].name else ''}"
        ),
    )
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id
    live = by_id[run_id].active
    st.fragment(run_every=2 if live else None)(run_details)(store, run_id, objectives)


if __name__ == "__main__":
    render()
