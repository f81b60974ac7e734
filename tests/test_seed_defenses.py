"""The seed defenses of issue 6: denoising blocks and networks, differentiable DeepFool, the attention
terms, the three objectives (gradients, a few optimisation steps, a short trainer run each)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from advlens.attacks import DeepFool
from advlens.data import load_digits
from advlens.models import Classifier, ModelSpec, build_model, load_checkpoint, save_checkpoint
from advlens.training.config import ConfigError, TrainConfig, validate
from advlens.training.init_from import apply_init
from advlens.training.objectives import StepContext, get_objective
from advlens.zoo import load_model
from defenses.attention_loss import attended_mask, attention_cam, contrast_loss, erase_attended, erase_fill, mask_loss
from defenses.deepfool_diff import deepfool, deepfool_ratios, rho2
from defenses.denoise import suppression_ratio
from defenses.denoise_block import (
    OPERATORS,
    DenoiseBlock,
    add_denoise_blocks,
    block_features,
    block_spec,
    denoise_blocks,
)


@pytest.fixture(scope="module")
def batch():
    """32 digits test images (float in [0, 1]) and their labels."""
    x, y = load_digits("test").batch(range(32))
    return x, y


def ctx_for(model, eps=0.3):
    return StepContext(
        step=0, epoch=0, total_steps=1, eps=eps, num_classes=10, attack_model=model, device=torch.device("cpu")
    )


def objective(name, params=None, eps=0.3):
    cfg = TrainConfig(objective=name, objective_params=params or {}, dataset="digits", eps=eps)
    return get_objective(name)(params or {}, cfg)


def weight_grads(model, loss):
    grads = torch.autograd.grad(
        loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True, retain_graph=True
    )
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return dict(zip(names, grads))


# ------------------------------------------------------------------------------ denoising blocks
@pytest.mark.parametrize("operator", list(OPERATORS))
def test_denoise_block_is_exactly_the_identity_at_initialisation(operator):
    torch.manual_seed(0)
    block = DenoiseBlock(8, operator, kernel_size=3)
    f = torch.randn(4, 8, 7, 7)
    for train in (True, False):
        block.train(train)
        assert torch.equal(block(f), f)
    assert torch.equal(block.bn.weight, torch.zeros(8)) and torch.equal(block.bn.bias, torch.zeros(8))
    # once gamma moves, the block adds BN(Conv1x1(D(f))) -- it is no longer the identity
    with torch.no_grad():
        block.bn.weight.fill_(1.0)
    block.eval()
    expected = f + block.bn(block.conv(block.denoise(f)))
    assert torch.allclose(block(f), expected) and (block(f) - f).abs().max() > 1e-3


@pytest.mark.parametrize(
    "arch, shape, stages, names",
    [
        ("small_cnn", (1, 28, 28), "conv1,conv2", ["net.denoise.conv1", "net.denoise.conv2"]),
        ("small_cnn", (1, 28, 28), "conv2", ["net.denoise.conv2"]),
        ("preact_resnet18", (3, 32, 32), None, [f"net.denoise.layer{i}" for i in range(1, 5)]),
        ("preact_resnet18", (3, 32, 32), ["layer3", "layer1"], ["net.denoise.layer1", "net.denoise.layer3"]),
    ],
)
def test_inserting_blocks_keeps_the_logits_and_records_the_spec(arch, shape, stages, names):
    torch.manual_seed(0)
    base = build_model(arch).eval()
    net = add_denoise_blocks(base, stages, "nonlocal_dot")
    x = torch.rand(3, *shape)
    assert (net(x) - base(x)).abs().max() <= 1e-6
    assert list(denoise_blocks(net)) == names
    assert net.spec.arch == f"{arch}_denoise" and net.spec.arch_kwargs["base"] == arch
    assert net.spec.arch_kwargs["stages"] == [n.rsplit(".", 1)[1] for n in names]
    assert not net.training
    assert set(base.state_dict()) < set(net.state_dict())  # the base tensors keep their names
    for n in names:
        assert n in net.feature_layers()
    # a denoising network can be re-equipped (its blocks replaced)
    again = add_denoise_blocks(net, stages, "mean")
    assert {b.operator for b in denoise_blocks(again).values()} == {"mean"}


def test_bad_stages_and_architectures_are_refused():
    with pytest.raises(ValueError, match="no stage 'layer9'"):
        block_spec("layer9", base="preact_resnet18")
    with pytest.raises(ValueError, match="unknown denoising operator"):
        block_spec("conv1", operator="wiener")
    other = Classifier(
        torch.nn.Identity(), ModelSpec("efficientnet_lite0", (3, 224, 224), ("a", "b"), (0.5,) * 3, (0.5,) * 3)
    )
    with pytest.raises(ValueError, match="not 'efficientnet_lite0'"):
        add_denoise_blocks(other)


def test_denoising_network_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    net = add_denoise_blocks(build_model("small_cnn"), "conv1,conv2", "nonlocal_embedded_gaussian")
    with torch.no_grad():
        for b in denoise_blocks(net).values():
            b.bn.weight.normal_()  # as if trained: the blocks now change the features
            b.bn.running_var.fill_(2.0)
    path = save_checkpoint(net, tmp_path / "dn")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["arch"] == "small_cnn_denoise"
    assert meta["arch_kwargs"] == {
        "base": "small_cnn",
        "stages": ["conv1", "conv2"],
        "operator": "nonlocal_embedded_gaussian",
        "kernel_size": 3,
    }
    loaded, _ = load_checkpoint(path)
    x = torch.rand(5, 1, 28, 28)
    net.eval()
    assert torch.equal(loaded(x), net(x))
    assert loaded.default_cam_layer() == "net.denoise.conv2"
    assert isinstance(loaded.get_submodule("net.denoise.conv1"), DenoiseBlock)


def test_block_features_report_the_noise_each_block_keeps(batch):
    torch.manual_seed(0)
    x, _ = batch
    x, xa = x[:4], (x[:4] + 0.1 * torch.randn_like(x[:4])).clamp(0, 1)
    net = add_denoise_blocks(build_model("small_cnn"), "conv2", "mean").eval()
    (bf,) = block_features(net, x, xa)
    assert bf.name == "net.denoise.conv2" and bf.before_clean.shape == (4, 64, 14, 14)
    assert torch.allclose(bf.ratio, torch.ones(4))  # identity at init: all the noise passes
    assert bf.gamma_norm == 0.0
    # the bare operator's ratio is the one of defenses.denoise on the block's input
    expected = suppression_ratio(bf.before_clean, bf.before_adv, "mean", kernel_size=3)
    assert torch.allclose(bf.operator_ratio, expected, atol=1e-6) and bool((expected < 1).all())
    with torch.no_grad():
        net.net.denoise.conv2.bn.weight.fill_(-1.0)
        net.net.denoise.conv2.conv.weight.copy_(torch.eye(64).view(64, 64, 1, 1))
    (bf2,) = block_features(net, x, xa)
    assert bool((bf2.ratio != 1).all()) and bf2.gamma_norm == pytest.approx(8.0)
    with pytest.raises(ValueError, match="no denoising blocks"):
        block_features(build_model("small_cnn"), x, xa)


# --------------------------------------------------------------------------- differentiable DeepFool
def test_differentiable_deepfool_finds_the_attack_s_perturbation(digits_model, batch):
    x, y = batch
    with torch.no_grad():
        ok = digits_model(x).argmax(1) == y
    x, y = x[ok][:12], y[ok][:12]
    x_attack = DeepFool(digits_model, steps=5, overshoot=0.02, candidates=10)(x, y)
    r_attack = x_attack - x
    for create_graph in (False, True):
        res = deepfool(
            digits_model,
            x,
            y,
            candidates=10,
            max_iter=5,
            overshoot=0.02,
            slack=1e-4,
            clip=True,
            create_graph=create_graph,
        )
        rel = (res.r.detach() - r_attack).flatten(1).norm(dim=1) / r_attack.flatten(1).norm(dim=1)
        assert float(rel.max()) < 1e-3, rel
        assert res.r.requires_grad == create_graph
    with torch.no_grad():
        pred_attack = digits_model(x_attack).argmax(1)
        assert torch.equal(digits_model(res.x_adv).argmax(1), pred_attack)
    assert torch.equal(res.fooled, pred_attack != y) and float(res.fooled.float().mean()) > 0.8
    assert int(res.iterations.min()) >= 1 and int(res.iterations.max()) <= 5


def test_deepfool_toward_the_true_label_brings_misclassified_images_back(digits_model, batch):
    x, y = batch
    x, y = x[:16], y[:16]
    x_adv = DeepFool(digits_model, steps=50)(x, y)  # every image now misclassified
    with torch.no_grad():
        assert bool((digits_model(x_adv).argmax(1) != y).all())
    # slack 1e-4 (the attack's): the attack left some images exactly on a boundary (p = 0.5/0.5), where
    # steps without slack only approach the boundary and never cross it
    res = deepfool(
        digits_model, x_adv, y, toward=torch.ones(len(y), dtype=torch.bool), max_iter=20, slack=1e-4, create_graph=False
    )
    with torch.no_grad():
        back = digits_model(res.x_adv).argmax(1) == y
    assert bool(back.all()) and bool(res.fooled.all())
    # the attack stopped just past the boundary (overshoot 2%): the way back is a small part of the way out
    ratio = res.r.flatten(1).norm(dim=1) / (x_adv - x).flatten(1).norm(dim=1)
    assert float(ratio.median()) < 0.1 and float(ratio.min()) > 0


def test_gradients_flow_through_the_unrolled_deepfool_iterations(batch):
    torch.manual_seed(0)
    model = build_model("small_cnn").train()
    x, y = batch
    res = deepfool(model, x[:8], y[:8], max_iter=3, candidates=4, create_graph=True)
    grads = weight_grads(model, res.ratio(x[:8]).mean())
    for name, g in grads.items():
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_rho2_is_the_mean_deepfool_ratio(digits_model, digits_test):
    x, y = digits_test.pixels[:40], digits_test.labels[:40]
    out = rho2(digits_model, x, y)
    ratios = deepfool_ratios(digits_model, x)
    assert out["images"] == 40 and out["fooled"] == 1.0
    assert out["rho2"] == pytest.approx(float(ratios["ratio"].mean()), rel=1e-6)
    assert 0.02 < out["rho2"] < 0.5
    assert out["accuracy"] >= 0.95 and not digits_model.training


# ---------------------------------------------------------------------------------- attention terms
def test_attention_terms(batch):
    torch.manual_seed(0)
    x, y = batch
    x = x[:8]
    maps = torch.rand(8, 28, 28)
    m = attended_mask(maps)
    assert m.shape == (8, 1, 28, 28) and not m.requires_grad
    assert torch.equal(m[:, 0] > 0, maps > maps.flatten(1).mean(1).view(-1, 1, 1))
    fill = erase_fill(x, "mean")
    assert fill.shape == (1, 1, 1, 1) and float(fill) == pytest.approx(float(x.mean()))
    xm = erase_attended(x, m, fill)
    assert torch.equal(xm[m.expand_as(x) == 0], x[m.expand_as(x) == 0])
    assert torch.allclose(xm[m.expand_as(x) == 1], fill.expand_as(x)[m.expand_as(x) == 1])
    assert float(erase_fill(x, "grey")) == 0.5 and float(erase_fill(x, "zero")) == 0.0
    p, q = torch.softmax(torch.randn(8, 10), 1), torch.softmax(torch.randn(8, 10), 1)
    assert float(mask_loss(p, q, p, p)) == pytest.approx(-float((p - q).pow(2).mean()))
    assert float(contrast_loss(maps, maps)) == 0.0
    assert float(contrast_loss(maps, torch.zeros_like(maps))) == pytest.approx(float(maps.pow(2).mean()))


@pytest.mark.parametrize("variant", ["softmax", "relu"])
def test_each_attention_term_has_weight_gradients_through_grad_cam(batch, variant):
    torch.manual_seed(0)
    model = build_model("small_cnn").train()
    x, y = batch
    x, y = x[:8], y[:8]
    x_adv = (x + 0.3 * torch.randn_like(x).sign()).clamp(0, 1)
    cam = attention_cam(model, torch.cat([x, x_adv]), torch.cat([y, y]), None, variant, "max")
    assert cam.maps.shape == (16, 28, 28) and float(cam.maps.detach().max()) <= 1.0 + 1e-6
    p = cam.logits.softmax(1)
    pm = model(erase_attended(torch.cat([x, x_adv]), attended_mask(cam.maps), erase_fill(x, "mean"))).softmax(1)
    for kind, term in (
        ("contrast", contrast_loss(cam.maps[:8], cam.maps[8:])),
        ("mask", mask_loss(p[:8], pm[:8], p[8:], pm[8:])),
    ):
        grads = weight_grads(model, term)
        if kind == "contrast":  # the map depends on the weights only through A and dS_t/dA: not on fc2's bias
            assert grads.pop("net.fc2.bias") is None
        assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
        for name in ("net.conv1.weight", "net.conv2.weight", "net.fc1.weight", "net.fc2.weight"):
            assert grads[name].abs().sum() > 0, (kind, name)


# ------------------------------------------------------------------------------------- objectives
@pytest.mark.parametrize(
    "name, params",
    [
        ("attention", {}),
        ("attention", {"adversary": "pgd", "pgd_steps": 2, "second_update": True, "cam_variant": "relu"}),
        ("feature_denoise", {"steps": 2, "operator": "nonlocal_dot"}),
        ("feature_denoise", {"steps": 2, "operator": "median", "stages": "conv2", "targeted": True}),
        ("deep_defense", {"max_iter": 2, "candidates": 4}),
    ],
)
def test_objective_loss_has_finite_nonzero_weight_gradients(batch, name, params):
    torch.manual_seed(0)
    obj = objective(name, params)
    model = obj.prepare_model(build_model("small_cnn")).train()
    x, y = batch
    loss, scalars = obj.loss(model, x[:16], y[:16], ctx_for(model))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in scalars.values())
    grads = weight_grads(model, loss)
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    nonzero = {n for n, g in grads.items() if g.abs().sum() > 0}
    assert {"net.conv1.weight", "net.conv2.weight", "net.fc1.weight", "net.fc2.weight"} <= nonzero
    if name == "feature_denoise":  # the zero-initialised gamma of each block gets a gradient
        assert any(n.endswith("bn.weight") for n in nonzero)


def test_deep_defense_regulariser_matches_its_formula(digits_model, batch):
    obj = objective("deep_defense", {"max_iter": 3, "candidates": 10})
    model = copy.deepcopy(digits_model).train()
    x, y = batch
    x, y = x[:12], y[:12].clone()
    y[:3] = (y[:3] + 1) % 10  # three samples "misclassified": DeepFool runs toward these labels
    loss, s = obj.loss(model, x, y, ctx_for(model))
    with torch.no_grad():
        logits = model(x)
    correct = logits.argmax(1) == y
    assert int((~correct).sum()) == 3
    res = deepfool(model, x, y, toward=~correct, max_iter=3, candidates=10, create_graph=False)
    ratio = res.ratio(x)
    reg = torch.where(correct, torch.exp(-25 * ratio), torch.exp(5 * ratio.clamp(max=1.0))).mean()
    assert float(s["reg"]) == pytest.approx(float(reg), rel=1e-4)
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, y) + 15 * reg), rel=1e-4)
    assert float(s["rho"]) == pytest.approx(float(ratio[correct].mean()), rel=1e-4)


@pytest.mark.parametrize(
    "name, params, steps, lr, n",
    [
        ("attention", {}, 10, 2e-3, 16),
        ("feature_denoise", {"steps": 2, "operator": "mean", "stages": "conv2"}, 8, 2e-3, 16),
        ("deep_defense", {"max_iter": 2, "candidates": 3}, 5, 5e-4, 8),
    ],
)
def test_a_few_steps_on_a_fixed_batch_decrease_the_objective(digits_model, batch, name, params, steps, lr, n):
    torch.manual_seed(0)
    obj = objective(name, params)
    base = copy.deepcopy(digits_model) if name == "deep_defense" else build_model("small_cnn")
    model = obj.prepare_model(base).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = batch
    x, y = x[:n], y[:n]
    losses = []
    for _ in range(steps):
        torch.manual_seed(1)  # the same PGD start each step: the loss of one fixed problem
        loss, _ = obj.loss(model, x, y, ctx_for(model))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_objectives_are_registered_with_documented_defaults():
    att = get_objective("attention")
    d = att.defaults("digits")
    assert (d["w_ce"], d["w_mask"], d["w_contrast"], d["adversary"], d["erase"]) == (8.0, 4.0, 1.0, "stepll", "mean")
    assert (
        d["pgd_steps"] == 10 and att.defaults("mnist")["pgd_steps"] == 40 and att.defaults("cifar10")["pgd_steps"] == 7
    )
    fd = get_objective("feature_denoise").defaults("mnist")
    assert fd["operator"] == "nonlocal_embedded_gaussian" and fd["clean_start_prob"] == 0.2
    assert fd["steps"] == 40 and fd["targeted"] is False
    dd = get_objective("deep_defense").defaults()
    assert (dd["lam"], dd["c"], dd["d"], dd["max_iter"], dd["overshoot"]) == (15.0, 25.0, 5.0, 5, 0.02)
    assert not get_objective("deep_defense").uses_eps
    for name in ("attention", "feature_denoise", "deep_defense"):
        cls = get_objective(name)
        assert cls.formula and cls.source and cls.arxiv and cls.extra_plots


def test_init_from_fine_tunes_from_a_checkpoint_or_a_zoo_model(tmp_path, digits_model):
    """TrainConfig.init_from (Deep Defense's clean starting model) loads the weights and the
    normalisation they were trained with, and refuses a mismatched or missing checkpoint."""
    path = save_checkpoint(digits_model, tmp_path / "clean")
    x = torch.rand(2, 1, 28, 28)
    fresh = build_model("small_cnn", mean=(0.0,), std=(1.0,))
    model = apply_init(fresh, str(path))
    assert torch.equal(model.eval()(x), digits_model(x))
    assert model.spec.mean == digits_model.spec.mean
    assert torch.equal(apply_init(fresh, "digits_small_cnn").eval()(x), load_model("digits_small_cnn", "cpu")(x))
    wrong = save_checkpoint(build_model("preact_resnet18"), tmp_path / "resnet")
    with pytest.raises(ConfigError, match="is a preact_resnet18 for 3x32x32 images"):
        apply_init(build_model("small_cnn"), str(wrong))
    with pytest.raises(ConfigError, match="no checkpoint at"):
        apply_init(build_model("small_cnn"), str(tmp_path / "missing.safetensors"))
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        validate(TrainConfig(objective="deep_defense", init_from="nope"))
    with pytest.raises(ConfigError, match="is a preact_resnet18; the run trains a small_cnn"):
        validate(TrainConfig(objective="deep_defense", init_from=str(wrong)))
    validate(TrainConfig(objective="deep_defense", init_from="digits_small_cnn"))


def test_feature_denoise_refuses_models_it_cannot_equip():
    obj = objective("feature_denoise", {"stages": "layer2"})
    with pytest.raises(ConfigError, match="no stage 'layer2'"):
        obj.prepare_model(build_model("small_cnn"))
