"""Every objective trains: a few Adam steps on digits give a finite loss that goes down; and the
objectives compute what their papers say."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlens.data import load_digits
from advlens.models import build_model
from advlens.training.adversary import fgsm, pgd, sign_ascent
from advlens.training.config import TrainConfig
from advlens.training.objectives import EpochContext, StepContext, get_objective, list_objectives

FAST_PARAMS = {
    "pgd_at": {"steps": 3, "alpha": 0.05},
    "trades": {"steps": 3, "step_size": 0.05},
    "alp": {"steps": 3, "alpha": 0.05},
}


@pytest.fixture(scope="module")
def batch():
    ds = load_digits("train")
    x, y = ds.batch(range(64))
    return x, y


def _ctx(model, step=0):
    return StepContext(
        step=step, epoch=0, total_steps=20, eps=0.1, num_classes=10, attack_model=model, device=torch.device("cpu")
    )


@pytest.mark.parametrize("name", ["standard", "fgsm_at", "pgd_at", "fast_at", "trades", "alp", "clp"])
def test_objective_loss_is_finite_and_decreases_on_digits(name, batch):
    torch.manual_seed(0)
    x, y = batch
    cfg = TrainConfig(objective=name, eps=0.1)
    objective = get_objective(name)(FAST_PARAMS.get(name, {}), cfg)
    model = build_model("small_cnn").train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(12):
        loss, scalars = objective.loss(model, x, y, _ctx(model, step))
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in scalars.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_adversaries_stay_in_the_ball_and_the_box_and_raise_the_loss(batch):
    torch.manual_seed(0)
    x, y = batch
    model = build_model("small_cnn").eval()
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y)
    for x_adv in (fgsm(model, x, y, 0.1), pgd(model, x, y, 0.1, 0.03, 5)):
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            assert F.cross_entropy(model(x_adv), y) > clean
    # FGSM moves every pixel that can move by exactly eps, along the gradient sign.
    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    expected = (x + 0.1 * g.sign()).clamp(0, 1)
    assert torch.allclose(fgsm(model, x, y, 0.1), expected)
    # No steps: x itself, whatever the start.
    start = sign_ascent(model, x, lambda z: z.sum(), 0.1, 0.01, 0, start="normal")
    assert torch.equal(start, x)


def test_adversary_restores_the_model_mode(batch):
    x, y = batch
    model = build_model("small_cnn").train()
    sign_ascent(model, x, lambda z: z.sum(), 0.1, 0.01, 2, train=False)
    assert model.training
    model.eval()
    sign_ascent(model, x, lambda z: z.sum(), 0.1, 0.01, 2, train=True)
    assert not model.training


def test_fgsm_at_mixes_clean_and_adversarial_cross_entropy(batch):
    x, y = batch
    model = build_model("small_cnn").train()
    obj = get_objective("fgsm_at")({"a": 0.25}, TrainConfig(objective="fgsm_at", eps=0.1))
    loss, s = obj.loss(model, x, y, _ctx(model))
    assert float(loss.detach()) == pytest.approx(0.25 * float(s["ce"]) + 0.75 * float(s["ce_adv"]), rel=1e-5)
    assert float(s["ce_adv"]) > float(s["ce"])


def test_trades_loss_is_ce_plus_beta_kl(batch):
    torch.manual_seed(0)
    x, y = batch
    model = build_model("small_cnn").train()
    obj = get_objective("trades")(
        {"beta": 6.0, "steps": 2, "step_size": 0.05}, TrainConfig(objective="trades", eps=0.1)
    )
    loss, s = obj.loss(model, x, y, _ctx(model))
    assert float(loss.detach()) == pytest.approx(float(s["ce"]) + 6.0 * float(s["kl"]), rel=1e-5)
    assert float(s["kl"]) >= 0


def test_logit_pairing_terms(batch):
    torch.manual_seed(0)
    x, y = batch
    model = build_model("small_cnn").train()
    alp = get_objective("alp")({"lam": 0.5, "steps": 2, "alpha": 0.05}, TrainConfig(objective="alp", eps=0.1))
    loss, s = alp.loss(model, x, y, _ctx(model))
    assert float(loss.detach()) == pytest.approx(float(s["ce"]) + 0.5 * float(s["pairing"]), rel=1e-5)
    clp = get_objective("clp")({"lam": 1.0}, TrainConfig(objective="clp"))
    loss, s = clp.loss(model, x, y, _ctx(model))
    with torch.no_grad():
        z = model(x)
    assert float(s["pairing"]) == pytest.approx(float((z[:32] - z[32:]).pow(2).mean()), rel=1e-4)


def test_fast_at_guard_stops_and_restores_after_a_sharp_drop():
    obj = get_objective("fast_at")({"guard_drop": 0.2}, TrainConfig(objective="fast_at", eps=0.3))
    accs = iter([0.60, 0.70, 0.35])
    history: dict = {}
    model = build_model("small_cnn")
    guard = (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))

    def ctx(epoch):
        return EpochContext(
            epoch=epoch,
            model=model,
            eps=0.3,
            device=torch.device("cpu"),
            guard_batch=guard,
            robust_accuracy=lambda *a: next(accs),
            history=history,
            log=lambda m: None,
        )

    v1, v2, v3 = obj.on_epoch_end(ctx(0)), obj.on_epoch_end(ctx(1)), obj.on_epoch_end(ctx(2))
    assert not v1.stop and not v2.stop and v2.metrics == {"guard/pgd_acc": 0.70}
    assert v3.stop and v3.restore_previous and "0.700 to 0.350" in v3.message
    off = get_objective("fast_at")({"guard": False}, TrainConfig(objective="fast_at", eps=0.3))
    assert off.on_epoch_end(ctx(3)) is None


def test_every_objective_describes_itself():
    for cls in list_objectives():
        obj = cls({}, TrainConfig(objective=cls.name))
        assert cls.title in obj.describe()
