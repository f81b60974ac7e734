"""The recipes of the models that ship in ``assets/models``: one place, with the reason for each value.

A shipped model is rebuilt by ``python -m advlens build-model NAME`` (:mod:`advlens.cli.build_model`):
an ordinary tracked training run of the recipe's :class:`TrainConfig`, then an evaluation (clean
accuracy on the whole test split; robust accuracy under the standard suite on ``n`` test images
chosen by the one subset rule of :mod:`advlens.data.subset`, at the recipe's budgets), then the weights are written in float16 when that changes the
test accuracy by less than 0.1 point (the loader casts them back to float32).

The digits model keeps its own command (``build-default-model``); the recipes here are the MNIST and
CIFAR-10 models. Everything was sized for the 2-core CPU: each run takes well under an hour there,
and so does each evaluation (n: 1,000 / 500 MNIST test images, the first ones; 500 CIFAR-10 test
images, a class-stratified sample, 50 per class; the standard suite on a whole test set would take
many hours on that CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import TrainConfig

CIFAR_LABEL = "CIFAR-10 (JPEG q75 copy)"


@dataclass(frozen=True)
class ShippedRecipe:
    name: str
    description: str
    data: str  # "mnist" (the gzip IDX folder) or "cifar10-jpeg" (the JPEG tar, unpacked once)
    settings: dict  # TrainConfig fields
    eval_eps: tuple[float, ...]  # the L-inf budgets of the shipped evaluation
    eval_n: int  # default n of the standard-suite evaluation (images chosen by advlens.data.subset)
    why: dict = field(default_factory=dict)  # setting -> the reason for its value

    def config(self, data_root: str, **overrides) -> TrainConfig:
        return TrainConfig(**{**self.settings, "data_root": data_root, "name": f"shipped: {self.name}", **overrides})


# small_cnn with a 512-wide fully connected layer: the 1024 of Madry's network doubles the file for no
# accuracy on MNIST, and assets/ must stay under 20 MB.
_MNIST = dict(
    dataset="mnist",
    arch="small_cnn",
    arch_kwargs={"hidden": 512},
    batch_size=128,
    optimizer="adam",
    schedule="onecycle",
    crop_padding=0,
    flip=False,
    eps=0.3,
    val_size=1000,
    eval_size=500,
    seed=0,
    device="cpu",
)
_CIFAR = dict(
    dataset="folder",
    arch="resnet20",
    batch_size=128,
    optimizer="sgd",
    momentum=0.9,
    weight_decay=5e-4,
    crop_padding=4,
    flip=True,
    eps=8 / 255,
    val_size=1000,
    eval_size=256,
    seed=0,
    device="cpu",
)

RECIPES: dict[str, ShippedRecipe] = {
    r.name: r
    for r in (
        ShippedRecipe(
            "mnist_small_cnn",
            "small_cnn (fc 512) trained on MNIST (standard training)",
            "mnist",
            {**_MNIST, "objective": "standard", "epochs": 3, "lr": 2e-3, "eval_steps": 10},
            eval_eps=(0.3,),  # the robust model's budget; at 0.1 a standard MNIST CNN keeps much of its accuracy
            eval_n=1000,  # and the suite's Square stage on those images costs about an hour on this CPU
            why={
                "epochs": "3 epochs of Adam one-cycle reach about 99% on MNIST; more adds little",
                "lr": "2e-3 is the peak of the one-cycle schedule that also trains the robust model",
            },
        ),
        ShippedRecipe(
            "mnist_small_cnn_pgd_at",
            "small_cnn (fc 512) trained on MNIST with PGD-AT at eps 0.3 (Madry et al. 2018)",
            "mnist",
            {
                **_MNIST,
                "objective": "pgd_at",
                "objective_params": {"steps": 7, "alpha": 0.06},
                "epochs": 4,
                "lr": 2e-3,
                "eps_warmup": 0.15,
                "eval_steps": 10,
            },
            eval_eps=(0.3,),
            eval_n=500,
            why={
                "objective_params": "PGD-7 with step 0.06 (1.4 eps in all) instead of Madry's PGD-40: 5x cheaper, "
                "and as strong on MNIST after 4 epochs (bench/RESULTS.md, MNIST PGD-AT)",
                "epochs": "4 epochs instead of Madry's 83: the one-cycle schedule converges by then on this CPU",
                "eps_warmup": "eps ramps from 0 over the first 15% of the steps; a full eps from step 0 stalls the "
                "network at chance",
            },
        ),
        ShippedRecipe(
            "cifar10_resnet20",
            f"ResNet-20 trained on {CIFAR_LABEL} (standard training)",
            "cifar10-jpeg",
            {**_CIFAR, "objective": "standard", "epochs": 10, "lr": 0.2, "schedule": "cyclic", "eval_steps": 0},
            eval_eps=(2 / 255, 8 / 255),
            eval_n=500,  # 50 per class: the JPEG copy's folders are sorted by class
            why={
                "epochs": "10 epochs: about 25 min on one CPU core; the cyclic schedule gets most of the accuracy",
                "lr": "SGD with a cyclic rate 0 -> 0.2 -> 0 (Wong et al. 2020 / Smith's super-convergence)",
                "weight_decay": "5e-4, the standard CIFAR value",
                "crop_padding": "4 px random crops and flips: the standard CIFAR augmentation",
                "eval_steps": "0: the live curve shows clean accuracy only (a standard model is not robust)",
            },
        ),
        ShippedRecipe(
            "cifar10_resnet20_fast_at",
            f"ResNet-20 trained on {CIFAR_LABEL} with Fast-AT at 8/255 (Wong et al. 2020)",
            "cifar10-jpeg",
            {
                **_CIFAR,
                "objective": "fast_at",
                "objective_params": {"alpha_ratio": 1.25},
                "epochs": 6,
                "lr": 0.2,
                "schedule": "cyclic",
                "eval_steps": 10,
            },
            eval_eps=(8 / 255,),
            eval_n=500,
            why={
                "objective": "FGSM from a random start (Fast-AT): 2 passes per step, the only AT a CPU affords",
                "objective_params": "alpha 1.25 eps = 10/255, the authors' step",
                "epochs": "6 epochs: about 40 minutes on one CPU core; the published 15 need a GPU",
            },
        ),
    )
}


def get_recipe(name: str) -> ShippedRecipe:
    if name not in RECIPES:
        raise KeyError(f"no shipped recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]
