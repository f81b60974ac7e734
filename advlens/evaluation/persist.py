"""An evaluation on disk, in safetensors and JSON (never pickle), to resume it or to show it later.

``save(evaluation, stem)`` writes ``stem.safetensors`` (the per-image tensors, the current stage,
and the adversarial points, stacked with their image indices) and ``stem.json`` (suite, norm, eps,
seed, where the cascade is, the seconds per attack, who broke which image). ``load(stem)`` builds
the :class:`~advlens.evaluation.cascade.Evaluation` back. Both files are written atomically, so a
worker killed while saving leaves the previous state. ``keep`` caps how many adversarial points are
written (a finished evaluation keeps a gallery, not every image).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from ..models.checkpoint import atomic_write_bytes
from ..safe_json import loads_limited
from .cascade import Evaluation
from .suites import get_suite

MAX_STATE_BYTES = 2 * 1024**3


def save(evaluation: Evaluation, stem: Path, keep: int | None = None) -> None:
    ev = evaluation
    order = sorted(ev.x_adv)[: keep if keep is not None else None]
    tensors = {
        "clean_correct": ev.clean_correct.to(torch.uint8),
        "robust": ev.robust.to(torch.uint8),
        "linf": ev.linf.float(),
        "l2": ev.l2.float(),
        "adv_index": torch.tensor(order, dtype=torch.int64),
    }
    if order:
        tensors["adv"] = torch.stack([ev.x_adv[i] for i in order]).float().contiguous()
    if ev.stage is not None:
        tensors["stage"] = ev.stage.to(torch.int64)
    meta = {
        "suite": ev.suite.name,
        "norm": ev.norm,
        "eps": ev.eps,
        "seed": ev.seed,
        "position": ev.position,
        "next_batch": ev.next_batch,
        "seconds": ev.seconds,
        "stopped": ev.stopped,
        "broken_by": ev.broken_by,
        "adaptations": ev.adaptations,
    }
    stem = Path(stem)
    atomic_write_bytes(stem.with_suffix(".safetensors"), save_tensors(tensors))
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(meta).encode())


def load(stem: Path) -> Evaluation:
    stem = Path(stem)
    blob = stem.with_suffix(".safetensors")
    if blob.stat().st_size > MAX_STATE_BYTES:
        raise ValueError(f"{blob} is larger than {MAX_STATE_BYTES} bytes")
    t = load_tensors(blob.read_bytes())
    meta = loads_limited(stem.with_suffix(".json").read_text(), stem.name, MAX_STATE_BYTES)
    n = len(t["robust"])
    if len(meta["broken_by"]) != n or any(len(t[k]) != n for k in ("clean_correct", "linf", "l2")):
        raise ValueError(f"{stem}: the per-image records disagree in length")
    adv = {}
    if "adv" in t:
        adv = {int(i): t["adv"][k] for k, i in enumerate(t["adv_index"].tolist())}
    return Evaluation(
        get_suite(meta["suite"]),
        meta["norm"],
        float(meta["eps"]),
        int(meta["seed"]),
        t["clean_correct"].bool(),
        t["robust"].bool(),
        [str(b) for b in meta["broken_by"]],
        t["linf"],
        t["l2"],
        adv,
        {str(k): float(v) for k, v in meta["seconds"].items()},
        bool(meta["stopped"]),
        int(meta["position"]),
        int(meta["next_batch"]),
        t.get("stage"),
        str(meta.get("adaptations", "")),
    )
