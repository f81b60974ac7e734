"""The best-known evaluation of a model: what the zoo and the Compare page show beside its name.

Among the finished evaluation runs that include the model, the most trustworthy wins: the
strongest suite (standard over quick), then the largest n, then the newest. Its figures are shown
with their protocol, so a quick (upper-bound) figure is never mistaken for a standard one.
Reads the run store and the reports only; nothing is computed here.
"""

from __future__ import annotations

from ..budget import format_budget
from ..data.subset import short_rule
from ..jobs.store import RunStore, db_path, run_dir
from ..safe_json import loads_limited
from .suites import SUITES

Found = dict[str, list[tuple[str, dict, list[dict]]]]


def finished_evaluations(names=None) -> Found:
    """The finished evaluations in the run store, read once: model name -> (run id, report, the model's
    records) per evaluation that includes it; only those of ``names`` when given (the other reports are
    not read). A page listing many models reads the store once this way."""
    if not db_path().is_file():
        return {}
    out: Found = {}
    for rec in RunStore().list_runs(kind="evaluate", status="done"):
        models = [m for m in rec.config.get("models", []) if names is None or m in names]
        if not models:
            continue
        try:
            report = loads_limited((run_dir(rec.id) / "report.json").read_text(), "report.json", 256 * 1024**2)
        except (OSError, ValueError):
            continue
        for name in dict.fromkeys(models):
            records = [r for r in report.get("results", []) if r.get("model") == name]
            if records:
                out.setdefault(name, []).append((rec.id, report, records))
    return out


def evaluations_of(model_name: str, found: Found | None = None) -> list[tuple[str, dict, list[dict]]]:
    """(run id, report, the model's records) for every finished evaluation of ``model_name`` (from
    ``found``, :func:`finished_evaluations`'s answer, when the caller has read the store already)."""
    return (finished_evaluations({model_name}) if found is None else found).get(model_name, [])


def best_known(model_name: str, found: Found | None = None) -> tuple[str, dict, list[dict]] | None:
    found = evaluations_of(model_name, found)
    if not found:
        return None

    def rank(item):
        _, report, _ = item
        suite = SUITES.get(report.get("suite"))
        return (suite.strength if suite else 0, report.get("n", 0), report.get("created", ""))

    return max(found, key=rank)


def describe(records: list[dict], suite_name: str, norm: str, n: int, source: str, subset: dict | None = None) -> str:
    """``robust 69.7% at eps 0.1 (25.5/255) [64.7, 74.4] · standard suite, Linf, n = 360, first n (10/10
    classes) (evaluation ab12cd)``: the figures, the suite, n and which images."""
    figures = ", ".join(
        f"{r['robust_accuracy'] * 100:.1f}% at eps {format_budget(r['eps'], r.get('norm', norm))} "
        f"[{r['robust_interval_95'][0] * 100:.1f}, {r['robust_interval_95'][1] * 100:.1f}]"
        for r in sorted(records, key=lambda r: r["eps"])
    )
    suite = SUITES.get(suite_name)
    bound = "" if suite_name == "standard" else " (an upper bound)"
    images = short_rule(subset or records[0].get("subset"))
    return f"robust {figures} · {suite.title if suite else suite_name}{bound}, {norm}, n = {n}, {images} ({source})"


def describe_best(model_name: str, shipped: list[dict] | None = None, found: Found | None = None) -> str | None:
    """The best-known evaluation of ``model_name`` in words: the strongest of the run store's finished
    evaluations, or the standard-suite records shipped in the model's metadata (``shipped``) when no
    evaluation here is as strong (the larger n wins between equal suites)."""
    best = best_known(model_name, found)
    if shipped:
        mine = (SUITES["standard"].strength, shipped[0]["n"])
        suite = SUITES.get(best[1].get("suite")) if best else None
        if best is None or (suite.strength if suite else 0, best[1].get("n", 0)) < mine:
            return describe(shipped, shipped[0]["suite"], shipped[0]["norm"], shipped[0]["n"], "shipped with the model")
    if best is None:
        return None
    run_id, report, records = best
    return describe(records, report["suite"], report["norm"], report["n"], f"evaluation {run_id}", report.get("subset"))


def evaluation_of(entry, found: Found | None = None) -> str | None:
    """The best-known robustness evaluation of a zoo entry, with its protocol (None if never evaluated):
    the evaluations run here (``found``: :func:`finished_evaluations`, read once for many entries)
    against the records shipped in its metadata."""
    return describe_best(entry.name, entry.shipped_evaluations, found)
