"""Transfer attacks: craft on a surrogate, apply to a target, for every pair of models.

``transfer_matrix(models, x, y, attack, **params)`` crafts the adversarial images of ``x`` on each
source model with a registered attack (MI-, DI- or TI-FGSM are the usual choices: Dong et al. 2018,
Xie et al. 2019, Dong et al. 2019) and feeds them to every target model. Cell (source, target) is
the success rate on the target: among the images the target classifies correctly (clean), the
fraction whose adversarial version (crafted on the source) it misclassifies (untargeted), with its
95% Clopper-Pearson interval and its n. The diagonal is the white-box success rate. A pure black-box
setting: the target is only ever asked for its predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..models.modes import eval_mode, model_device
from .base import AttackConfigError
from .registry import get_attack
from .result import attack_in_batches


@dataclass
class TransferMatrix:
    names: list[str]
    attack: str
    params: dict
    rate: list[list[float]]  # [source][target]
    count: list[list[int]]  # images fooled
    n: list[int]  # per target: images it classifies correctly (the denominator)
    clean_accuracy: list[float]  # per model
    images: int

    def interval(self, i: int, j: int) -> tuple[float, float]:
        from ..intervals import clopper_pearson

        return clopper_pearson(self.count[i][j], self.n[j])

    def protocol(self) -> str:
        from .registry import describe_attack

        return (
            f"{self.attack} ({describe_attack(self.attack, self.params)}) crafted on each source, untargeted; "
            f"success rate on each target among the images it classifies correctly; {self.images} images"
        )

    def to_dict(self) -> dict:
        return {
            "names": self.names,
            "attack": self.attack,
            "params": self.params,
            "protocol": self.protocol(),
            "success_rate": self.rate,
            "fooled": self.count,
            "n_per_target": self.n,
            "clean_accuracy": self.clean_accuracy,
            "interval_95": [
                [list(self.interval(i, j)) for j in range(len(self.names))] for i in range(len(self.names))
            ],
        }


def _predict(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = model_device(model)
    with torch.no_grad(), eval_mode(model):
        return torch.cat(
            [model(x[s : s + batch_size].to(device)).argmax(1).cpu() for s in range(0, len(x), batch_size)]
        )


def transfer_matrix(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str = "mifgsm",
    *,
    batch_size: int = 64,
    progress: Callable[[int, int], object] | None = None,
    **params,
) -> TransferMatrix:
    """Success rates source -> target of ``attack`` crafted on each model of ``models`` (name -> model).

    ``x``: (N, C, H, W) in [0, 1]; ``y``: labels. The models must take the same input shape."""
    if len(models) < 1:
        raise AttackConfigError("choose at least one model")
    cls = get_attack(attack)
    cls.validate_params(params)
    if x.ndim != 4 or len(x) == 0:
        raise AttackConfigError("the images must be a non-empty (N, C, H, W) batch")
    shapes = {tuple(getattr(m, "input_size", x.shape[1:])) for m in models.values()}
    if len(shapes) > 1 or tuple(x.shape[1:]) not in shapes:
        raise AttackConfigError("every model must take the images' shape " + str(tuple(x.shape[1:])))
    x = x.float().cpu()
    y = torch.as_tensor(y).long().cpu()
    names = list(models)
    correct = {name: _predict(m, x, batch_size) == y for name, m in models.items()}
    rate, count = [], []
    for i, src in enumerate(names):
        x_adv = attack_in_batches(models[src], x, y, attack, batch_size=batch_size, **params)
        row_r, row_c = [], []
        for tgt in names:
            ok = correct[tgt]
            fooled = int(((_predict(models[tgt], x_adv, batch_size) != y) & ok).sum())
            row_c.append(fooled)
            row_r.append(fooled / max(int(ok.sum()), 1))
        rate.append(row_r)
        count.append(row_c)
        if progress is not None:
            progress(i + 1, len(names))
    return TransferMatrix(
        names=names,
        attack=cls.name,
        params=cls.validate_params(params),
        rate=rate,
        count=count,
        n=[int(correct[t].sum()) for t in names],
        clean_accuracy=[float(correct[t].float().mean()) for t in names],
        images=len(x),
    )
