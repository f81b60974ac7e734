"""Reproducing a RobustBench leaderboard row: the standard suite on the first n images of the
original CIFAR-10 test set (the python batches of the canonical download, in their official order,
as RobustBench takes them), our figure beside the published one.

The JPEG copy of CIFAR-10 (``--dataset folder``) is not that set: its images were re-encoded and
its order is by class, so it cannot reproduce the row; :func:`leaderboard_setup` always uses the
``cifar10`` dataset (downloaded into ``$ADVLENS_DATA_DIR`` unless a folder with the batches is given).
"""

from __future__ import annotations

from ..models.robustbench.catalog import get_catalog_entry

TEST_SET = "the original CIFAR-10 test set (python batches, official order, first n images as RobustBench)"


def leaderboard_setup(models: list[str], root: str | None) -> dict:
    """The dataset, budget and norm for the leaderboard rows of ``models`` (all ``rb:cifar10/...`` of
    one threat model and budget), downloading CIFAR-10's batches when ``root`` is None."""
    entries = [get_catalog_entry(m.split("+", 1)[0]) for m in models]
    if any(e.dataset != "cifar10" for e in entries):
        raise ValueError("--leaderboard reproduces CIFAR-10 rows: give rb:cifar10/... models")
    if len({(e.threat, e.eps) for e in entries}) != 1:
        raise ValueError("--leaderboard needs models of one threat model and budget (run Linf and L2 separately)")
    if root is None:
        from ..data.download import ensure_downloaded

        root = str(ensure_downloaded("cifar10", download=True))
    return {"dataset": "cifar10", "root": root, "eps": entries[0].eps, "norm": entries[0].threat, "split": "test"}


JPEG_COPY = (
    "CIFAR-10 (JPEG q75 copy): NOT the leaderboard's images (re-encoded at JPEG quality 75, ordered by class, so "
    "a class-stratified sample is taken); not comparable with the published figure"
)


def which_images(report: dict) -> str:
    """Which test set and images an evaluation report used, in words that tell the two sets apart."""
    subset = (report.get("subset") or {}).get("description") or f"the first {report.get('n')} images"
    if report.get("dataset") == "cifar10":
        return f"{subset}; {TEST_SET}"
    if report.get("dataset") == "folder":
        return f"{subset}; {JPEG_COPY}"
    return f"{subset} ({report.get('dataset')}): not a leaderboard set"


def leaderboard_rows(report: dict) -> list[dict]:
    """Per result of a RobustBench model: ours (robust and clean accuracy in %, the 95% Clopper-Pearson
    interval, n, protocol, images) beside the published figures, and whether our interval holds them."""
    out = []
    for r in report.get("results", []):
        try:
            entry = get_catalog_entry(str(r["model"]).split("+", 1)[0])
        except KeyError:
            continue
        lo, hi = r["robust_interval_95"]
        out.append(
            {
                "model": entry.name,
                "ours_robust": r["robust_accuracy"] * 100,
                "ours_interval": (lo * 100, hi * 100),
                "ours_clean": r["clean_accuracy"] * 100,
                "n": r["n"],
                "protocol": r.get("protocol", ""),
                "images": which_images(report),
                "published_robust": entry.autoattack,
                "published_clean": entry.clean,
                "published_n": entry.n_test,
                "published_protocol": f"AutoAttack standard, {entry.threat} eps {entry.eps}",
                "inside": lo * 100 <= entry.autoattack <= hi * 100,
                "comparable": report.get("dataset") == "cifar10" and report.get("suite") == "standard",
            }
        )
    return out


def leaderboard_lines(report: dict) -> list[str]:
    """One line per result: ours (with its 95% interval and n) beside the published figure."""
    out = [f"leaderboard rows on {TEST_SET}:"]
    for r in leaderboard_rows(report):
        lo, hi = r["ours_interval"]
        inside = "inside" if r["inside"] else "OUTSIDE"
        out.append(
            f"  {r['model']}: robust {r['ours_robust']:.2f}% [{lo:.1f}, {hi:.1f}] on n = {r['n']} "
            f"(clean {r['ours_clean']:.2f}%) | published AutoAttack {r['published_robust']:.2f}%, clean "
            f"{r['published_clean']:.2f}% on n = {r['published_n']:,}: the published figure is {inside} our interval"
        )
    return out
