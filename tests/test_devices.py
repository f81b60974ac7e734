"""The engine on every available device: the CPU always, CUDA when present (issue 15).

These are the tests the GPU suite runs first (``pytest -m device``): attacks, CAMs, a training run
with mixed precision and channels-last where the device has them, and a checkpoint saved on the
device and loaded on the CPU. On a CPU-only machine they run once, on the CPU; on a GPU machine the
CUDA case is compared with the CPU one.
"""

from __future__ import annotations

import pytest
import torch

from advlens.attacks import ATTACKS
from advlens.attribution.cam import gradcam, gradcam_plus_plus
from advlens.data import to_float

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def batch(digits_test):
    x, y = digits_test.batch(range(16))
    return to_float(x), y


@pytest.fixture(scope="module")
def models():
    from advlens.zoo import load_model

    return {d: load_model("digits_small_cnn", d) for d in DEVICES}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, eps", [("pgd", 0.3), ("apgd_ce", 0.3), ("fgsm", 0.3), ("pgd_l2", 3.0), ("square", 0.3)])
def test_attacks_stay_in_budget_and_succeed_on_every_device(models, batch, device, name, eps):
    model = models[device]
    x, y = batch[0].to(device), batch[1].to(device)
    torch.manual_seed(0)
    params = {"steps": 200} if name == "square" else {}
    x_adv = ATTACKS[name](model, eps=eps, **params)(x, y)
    assert x_adv.device.type == device and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if name.endswith("l2") else delta.abs().amax(1)
    assert float(size.max()) <= eps + 1e-5
    with torch.no_grad():
        fooled = float((model(x_adv).argmax(1) != y).float().mean())
    assert fooled >= 0.8, fooled


@pytest.mark.parametrize("device", DEVICES)
def test_cams_agree_with_the_cpu(models, batch, device):
    x, y = batch
    for cam in (gradcam, gradcam_plus_plus):
        here = cam(models[device], x.to(device), y.to(device)).cpu()
        cpu = cam(models["cpu"], x, y)
        assert here.shape == (16, 28, 28) and torch.allclose(here, cpu, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_training_on_the_device_gives_a_checkpoint_the_cpu_loads(device):
    from advlens.models import load_checkpoint
    from advlens.training.config import TrainConfig
    from advlens.training.jobs import run_in_foreground

    cfg = TrainConfig(
        objective="fgsm_at",
        dataset="digits",
        epochs=2,
        batch_size=64,
        lr=3e-3,
        val_size=64,
        eval_size=64,
        eval_steps=2,
        eps=0.15,
        device=device,
        amp=True,  # bf16/fp16 autocast on CUDA, a no-op on the CPU
        channels_last=True,
    )
    rec = run_in_foreground(cfg)
    assert rec.status == "done", rec.message
    model, meta = load_checkpoint(rec.final_path, map_location="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert meta["arch"] == "small_cnn" and rec.metrics["test_accuracy"] > 0.6, rec.metrics
