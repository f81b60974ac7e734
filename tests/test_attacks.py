"""The attack engine: budgets, strength orderings, agreement with captum, targets, black-box
Square under no_grad, DeepFool's minimality, APGD, clean gradients, trajectories, validation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from advlens.attacks import (
    APGD,
    ATTACKS,
    FGSM,
    PGD,
    PIXEL,
    AttackConfigError,
    DeepFool,
    Square,
    find_minimal_eps,
    get_attack,
    run_attack,
)
from advlens.attacks.apgd import checkpoints
from advlens.attacks.losses import dlr_objective, margin
from advlens.attacks.square import p_selection

# Small, fast settings per attack (engine units).
FAST = {
    "fgsm": {"eps": 0.1},
    "pgd": {"eps": 0.1, "steps": 5},
    "pgd_l2": {"eps": 1.0, "steps": 5},
    "mifgsm": {"eps": 0.1, "steps": 5},
    "stepll": {"eps": 0.1},
    "deepfool": {"steps": 10},
    "cw": {"steps": 10, "binary_steps": 2},
    "square": {"eps": 0.1, "steps": 30},
    "apgd_ce": {"eps": 0.1, "steps": 8},
    "apgd_dlr": {"eps": 0.1, "steps": 8},
    "apgd_t": {"eps": 0.1, "steps": 8, "targets": 3},
    "fab_t": {"eps": 0.15, "steps": 8, "targets": 3},
    "square_l2": {"eps": 2.0, "steps": 200},
    "square_l1": {"eps": 12.0, "steps": 100},
    "apgd_ce_l2": {"eps": 1.5, "steps": 8},
    "apgd_dlr_l2": {"eps": 1.5, "steps": 8},
    "apgd_t_l2": {"eps": 1.5, "steps": 8, "targets": 3},
    "fab_t_l2": {"eps": 1.5, "steps": 8, "targets": 3},
    "apgd_ce_l1": {"eps": 8.0, "steps": 8},
    "apgd_dlr_l1": {"eps": 8.0, "steps": 8},
    "apgd_t_l1": {"eps": 8.0, "steps": 8, "targets": 3},
    "fab_t_l1": {"eps": 8.0, "steps": 8, "targets": 3},
    "fmn_l0": {"steps": 10},
    "fmn_l1": {"steps": 10},
    "fmn_l2": {"steps": 10},
    "fmn_linf": {"steps": 10},
    "sparse_rs": {"eps": 10, "steps": 30},
    "hopskipjump": {"steps": 3, "init_evals": 10},
    "hopskipjump_linf": {"steps": 3, "init_evals": 10},
    "difgsm": {"eps": 0.1, "steps": 5},
    "tifgsm": {"eps": 0.1, "steps": 5},
}
MINIMAL = ("fab_t", "fab_t_l2")  # minimal-norm search within the budget: the budget is a bound, not a target
LINF = [n for n, cls in ATTACKS.items() if cls.norm == "Linf" and n not in MINIMAL]
L2 = [n for n, cls in ATTACKS.items() if cls.norm == "L2" and "eps" in cls.defaults() and n not in MINIMAL]


@pytest.fixture(scope="module")
def batch(digits_test):
    return digits_test.batch(range(32))


def success(model, x_adv, y, target=None) -> torch.Tensor:
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    return pred != y if target is None else pred == target


def test_registry_is_complete_and_described():
    assert set(ATTACKS) == set(FAST)
    for name, cls in ATTACKS.items():
        assert get_attack(name) is cls and cls.name == name and cls.title and cls.paper
        for p in cls.params():
            assert p.help and p.kind in (float, int, bool, str)
            assert p.validate(p.default) == p.default
        if cls.norm == "Linf":
            eps = cls.param("eps")
            assert eps.unit == PIXEL and eps.format(8 / 255) == "8/255 (0.0314)"
    with pytest.raises(AttackConfigError, match="unknown attack"):
        get_attack("nope")


@pytest.mark.parametrize("name", LINF)
def test_linf_bound_and_box_hold_exactly(name, digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    eps = FAST[name]["eps"]
    x_adv = ATTACKS[name](digits_model, **FAST[name])(x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) > 0.5 * eps  # the budget is actually used


@pytest.mark.parametrize("name", L2 + list(MINIMAL))
def test_budgeted_l2_and_minimal_norm_attacks_stay_in_the_ball(name, digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    eps = FAST[name]["eps"]
    x_adv = ATTACKS[name](digits_model, **FAST[name])(x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if ATTACKS[name].norm == "L2" else delta.abs().amax(1)
    assert float(size.max()) <= eps + 1e-5 and float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        fooled = digits_model(x_adv).argmax(1) != y
    assert bool(fooled.any())  # each of them breaks something at this budget
    if name in MINIMAL:  # an image FAB cannot break within eps comes back unchanged
        assert float(delta[~fooled].abs().sum()) == 0.0


def test_pgd_l2_bound_holds(digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    for eps in (0.5, 2.0):
        x_adv = ATTACKS["pgd_l2"](digits_model, eps=eps, steps=5)(x, y)
        norms = (x_adv - x).flatten(1).norm(dim=1)
        assert float(norms.max()) <= eps + 1e-5
        assert float(norms.max()) > 0.9 * eps
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_pgd_succeeds_at_least_as_often_as_fgsm(digits_model, digits_test):
    torch.manual_seed(0)
    x, y = digits_test.batch(range(96))
    fgsm = success(digits_model, FGSM(digits_model, eps=0.1)(x, y), y).float().mean()
    pgd = success(digits_model, PGD(digits_model, eps=0.1, steps=10)(x, y), y).float().mean()
    assert pgd >= fgsm
    assert pgd >= 0.5  # a standard model at eps 0.1 (26/255) on digits


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_pgd_agrees_with_captum(digits_model, digits_test):
    """Same model, batch, eps, steps and step size; both with a random start."""
    from captum.robust import PGD as CaptumPGD

    x, y = digits_test.batch(range(200))
    eps, steps = 0.08, 10
    torch.manual_seed(0)
    ours = 1 - success(digits_model, PGD(digits_model, eps=eps, steps=steps)(x, y), y).float().mean().item()
    torch.manual_seed(0)
    captum = CaptumPGD(digits_model, lambda out, t: F.cross_entropy(out, t, reduction="none"), 0.0, 1.0)
    x_c = captum.perturb(x.clone(), eps, 2.5 * eps / steps, steps, y, norm="Linf", random_start=True)
    theirs = 1 - success(digits_model, x_c, y).float().mean().item()
    assert 0.2 < ours < 0.8  # the interesting regime, not saturated
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


@pytest.mark.parametrize(
    "name,params",
    [
        ("pgd", {"eps": 0.3, "steps": 20}),
        ("pgd_l2", {"eps": 4.0, "steps": 20}),
        ("mifgsm", {"eps": 0.3, "steps": 20}),
        ("apgd_ce", {"eps": 0.3, "steps": 20}),
        ("apgd_dlr", {"eps": 0.3, "steps": 20}),
        ("apgd_t", {"eps": 0.3, "steps": 20}),
        ("deepfool", {"steps": 30}),
        ("cw", {"steps": 40, "binary_steps": 2, "lr": 0.05}),
        ("square", {"eps": 0.3, "steps": 200}),
    ],
)
def test_targeted_attacks_reach_the_target(name, params, digits_model, digits_test):
    torch.manual_seed(0)
    x, y = digits_test.batch(range(16))
    target = (y + 3) % 10
    x_adv = ATTACKS[name](digits_model, **params)(x, y, target=target)
    rate = success(digits_model, x_adv, y, target).float().mean()
    assert rate >= 0.8, f"{name} reached the target on {rate:.0%}"


def test_single_step_targeted_raises_target_probability(digits_model, batch):
    x, y = batch
    target = (y + 3) % 10
    with torch.no_grad():
        before = digits_model(x).softmax(1).gather(1, target[:, None]).mean()
    for name in ("fgsm", "stepll"):
        x_adv = ATTACKS[name](digits_model, eps=0.2)(x, y, target=target)
        with torch.no_grad():
            after = digits_model(x_adv).softmax(1).gather(1, target[:, None]).mean()
        assert after > before + 0.1


def test_stepll_moves_toward_the_least_likely_class(digits_model, batch):
    x, y = batch
    with torch.no_grad():
        logits = digits_model(x)
    ll = logits.argmin(1)
    x_adv = ATTACKS["stepll"](digits_model, eps=0.2)(x, y)
    with torch.no_grad():
        assert (
            digits_model(x_adv).softmax(1).gather(1, ll[:, None]).mean()
            > logits.softmax(1).gather(1, ll[:, None]).mean()
        )


def test_square_runs_under_no_grad(digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    with torch.no_grad():
        x_adv = Square(digits_model, eps=0.3, steps=150)(x, y)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    rate = success(digits_model, x_adv, y).float().mean()
    assert rate >= 0.5, rate


def test_deepfool_needs_less_l2_than_fgsm(digits_model, digits_test):
    x, y = digits_test.batch(range(48))
    x_df = DeepFool(digits_model)(x, y)
    x_fg = FGSM(digits_model, eps=0.2)(x, y)
    both = success(digits_model, x_df, y) & success(digits_model, x_fg, y)
    assert int(both.sum()) >= 20
    l2_df = (x_df - x).flatten(1).norm(dim=1)[both]
    l2_fg = (x_fg - x).flatten(1).norm(dim=1)[both]
    assert float(l2_df.mean()) < 0.6 * float(l2_fg.mean())
    assert float((l2_df < l2_fg).float().mean()) >= 0.9


def test_deepfool_and_cw_flip_with_small_l2(digits_model, batch):
    x, y = batch[0][:8], batch[1][:8]
    res_df = run_attack(digits_model, x, y, "deepfool")
    res_cw = run_attack(digits_model, x, y, "cw", steps=30, binary_steps=2, lr=0.05)
    assert res_df.success_rate == 1.0 and res_cw.success_rate >= 0.85
    # Both are minimal-norm attacks: far below a PGD-L2 ball that breaks the same images.
    assert float(res_df.l2[res_df.success].median()) < 2.5
    assert float(res_cw.l2[res_cw.success].median()) < 2.5
    assert bool((res_cw.l2[~res_cw.success] == 0).all())  # failures come back unchanged


def test_apgd_at_least_as_strong_as_pgd(digits_model, digits_test):
    x, y = digits_test.batch(range(128))
    torch.manual_seed(0)
    pgd = success(digits_model, PGD(digits_model, eps=0.07, steps=10)(x, y), y).float().mean()
    torch.manual_seed(0)
    apgd = success(digits_model, APGD(digits_model, eps=0.07, steps=10)(x, y), y).float().mean()
    assert apgd >= pgd, (float(apgd), float(pgd))


def test_restarts_keep_the_worst_case(digits_model, digits_test):
    x, y = digits_test.batch(range(64))
    torch.manual_seed(3)
    x_one = PGD(digits_model, eps=0.06, steps=5)(x, y)
    torch.manual_seed(3)  # the first restart then repeats the single run exactly
    x_three = PGD(digits_model, eps=0.06, steps=5, restarts=3)(x, y)
    one, three = success(digits_model, x_one, y), success(digits_model, x_three, y)
    assert bool((three >= one).all())
    with torch.no_grad():
        loss_one = F.cross_entropy(digits_model(x_one), y, reduction="none")
        loss_three = F.cross_entropy(digits_model(x_three), y, reduction="none")
    unbroken = ~three
    assert bool((loss_three[unbroken] >= loss_one[unbroken] - 1e-4).all())
    assert bool((loss_three[unbroken] > loss_one[unbroken] + 1e-3).any())  # later restarts found worse points


@pytest.mark.parametrize("name", list(FAST))
def test_no_gradient_reaches_the_model_and_mode_is_restored(name, digits_model, batch):
    model = copy.deepcopy(digits_model)
    model.train()
    model.net.fc1.eval()  # a mixed state must come back exactly
    x, y = batch
    seen = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    ATTACKS[name](model, **FAST[name])(x[:8], y[:8])
    assert seen and not any(seen), "the attack must run the model in eval mode"
    assert model.training and model.net.conv1.training and not model.net.fc1.training
    assert all(p.grad is None for p in model.parameters())


def test_gradient_attacks_work_inside_no_grad(digits_model, batch):
    """Gradient attacks re-enable autograd for themselves, so a caller's no_grad block is harmless."""
    x, y = batch
    with torch.no_grad():
        x_adv = PGD(digits_model, eps=0.1, steps=3)(x[:4], y[:4])
    assert float((x_adv - x[:4]).abs().max()) > 0


def test_trajectory_records_each_step(digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    res = run_attack(digits_model, x, y, "pgd", eps=0.15, steps=8, record_images=True)
    traj = res.trajectory
    assert len(traj) == 9 and traj.step == list(range(9))
    loss, linf, l2, p_true = (traj.stacked(k) for k in ("loss", "linf", "l2", "p_true"))
    assert loss.shape == (9, 32)
    assert float(loss[-1].mean()) > float(loss[0].mean()) + 1.0
    assert float(p_true[-1].mean()) < float(p_true[0].mean())
    assert float(linf.max()) <= 0.15 + 1e-6 and float(l2.min()) > 0
    assert torch.equal(traj.stacked("success")[-1], res.success)
    assert torch.isnan(traj.stacked("p_target")).all()  # untargeted
    assert traj.frames() == list(range(9))
    img = traj.image(8, sample=5)
    assert img.shape == x.shape[1:] and float((img - res.x_adv[5]).abs().max()) < 2e-3
    series = traj.series(0)
    assert len(series["loss"]) == 9 and series["label"][0] == "step 0"


def test_trajectory_with_restarts_and_targets(digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    target = (y + 1) % 10
    res = run_attack(digits_model, x, y, "pgd", target=target, eps=0.05, steps=4, restarts=2, record=True)
    traj = res.trajectory
    assert set(traj.restart) <= {0, 1} and len(traj) in (5, 10)
    assert not traj.images  # images only on request
    p_target = traj.stacked("p_target")
    present = traj.stacked("present")
    assert not torch.isnan(p_target[present]).any() and torch.isnan(p_target[~present]).all()
    if len(traj) == 10:
        assert traj.labels()[5].startswith("restart 2")


def test_images_are_capped_by_max_frames(digits_model, batch):
    x, y = batch
    res = run_attack(digits_model, x[:2], y[:2], "square", eps=0.05, steps=100, record_images=True, max_frames=10)
    assert 0 < len(res.trajectory.frames()) <= 11
    assert res.trajectory.nearest_frame(37) in res.trajectory.frames()


def test_progress_and_stop(digits_model, batch):
    x, y = batch
    calls = []
    attack = PGD(
        digits_model, eps=0.1, steps=50, progress=lambda s, t: calls.append((s, t)), should_stop=lambda: len(calls) >= 3
    )
    x_adv = attack(x, y)
    assert attack.stopped and calls == [(1, 50), (2, 50), (3, 50)]
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6


@pytest.mark.parametrize("name", [n for n, c in ATTACKS.items() if c.iterative])
def test_every_iterative_attack_reports_progress(name, digits_model, batch):
    x, y = batch
    calls = []
    params = dict(FAST[name])
    ATTACKS[name](digits_model, progress=lambda s, t: calls.append((s, t)), **params)(x[:4], y[:4])
    assert calls and all(0 < s <= t for s, t in calls)
    assert [s for s, _ in calls] == sorted(s for s, _ in calls)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"eps": -1 / 255}, r"eps = -1/255 \(-0.0039\) is too small"),
        ({"eps": 2.0}, "too large"),
        ({"steps": 0}, "steps = 0 is too small"),
        ({"steps": 2.5}, "whole number"),
        ({"step_size": float("nan")}, "must be a number"),
        ({"restarts": 0}, "restarts"),
        ({"random_start": "maybe"}, "true or false"),
        ({"epsilon": 0.1}, "no parameter 'epsilon'"),
    ],
)
def test_bad_parameters_raise_clear_errors(params, match, digits_model):
    with pytest.raises(AttackConfigError, match=match) as err:
        PGD(digits_model, **params)
    assert isinstance(err.value, ValueError)


def test_bad_inputs_raise_clear_errors(digits_model, batch):
    x, y = batch
    attack = PGD(digits_model, eps=0.1, steps=1)
    with pytest.raises(AttackConfigError, match="out of range"):
        attack(x, y, target=10)
    with pytest.raises(AttackConfigError, match="out of range"):
        attack(x, y, target=-1)
    with pytest.raises(AttackConfigError, match="differ from the true class"):
        attack(x, y, target=y)
    with pytest.raises(AttackConfigError, match=r"\[0, 1\]"):
        attack(x * 2 - 0.5, y)
    with pytest.raises(AttackConfigError, match="4-D"):
        attack(x[0], y)
    with pytest.raises(AttackConfigError, match="shape"):
        attack(torch.zeros(2, 3, 28, 28), y[:2])
    with pytest.raises(AttackConfigError, match="labels"):
        attack(x, y + 10)
    with pytest.raises(AttackConfigError, match="got 3 labels"):
        run_attack(digits_model, x[:2], [1, 2, 3], "fgsm")


def test_run_attack_report(digits_model, batch):
    torch.manual_seed(0)
    x, y = batch
    labels = y.clone()
    labels[0] = -1  # unknown: the clean prediction stands in
    res = run_attack(digits_model, x, labels, "pgd", eps=0.2, steps=5)
    assert bool(res.y_from_prediction[0]) and not bool(res.y_from_prediction[1:].any())
    assert int(res.y[0]) == int(res.clean_pred[0])
    assert torch.allclose(res.linf, (res.x_adv - res.x).flatten(1).abs().amax(1))
    assert torch.allclose(res.l2, (res.x_adv - res.x).flatten(1).norm(dim=1))
    assert torch.equal(res.success, res.adv_pred != res.y)
    assert res.params["eps"] == 0.2 and res.params["steps"] == 5 and res.params["step_size"] is None
    top = res.topk("clean", k=5, index=1)
    assert len(top.names) == 5 and top.names[0] == str(int(y[1])) and top.probs == sorted(top.probs, reverse=True)
    summary = res.summary(index=1)
    assert summary["images"][0]["linf_255"] == pytest.approx(float(res.linf[1]) * 255)
    assert res.trajectory is None and res.seconds > 0


def test_minimal_eps_is_tight(digits_model, digits_test):
    torch.manual_seed(0)
    x, y = digits_test.batch(range(6))
    found = find_minimal_eps(digits_model, x, y, max_eps=64 / 255, tol=1 / 255, steps=10)
    assert found.found.all() and found.searches == 6
    eps = found.eps
    assert bool((eps > 0).all()) and bool((eps <= 64 / 255).all())
    linf = (found.x_adv - x).flatten(1).abs().amax(1)
    assert bool((linf <= eps + 1e-6).all())
    assert success(digits_model, found.x_adv, y).all()
    # Well below the budget, the same PGD fails on every image.
    torch.manual_seed(0)
    below = PGD(digits_model, eps=1.0, steps=10)
    below.eps_per_sample = eps / 3
    assert not success(digits_model, below(x, y), y).any()
    assert bool(torch.isfinite(found.deepfool_l2).all()) and bool((found.deepfool_l2 > 0).all())
    assert found.summary(0)["min_linf_eps_255"] == pytest.approx(float(eps[0]) * 255)


def test_minimal_eps_validation(digits_model, batch):
    x, y = batch
    with pytest.raises(AttackConfigError, match="max_eps"):
        find_minimal_eps(digits_model, x[:1], y[:1], max_eps=0.0)
    with pytest.raises(AttackConfigError, match="tol"):
        find_minimal_eps(digits_model, x[:1], y[:1], max_eps=0.1, tol=0.2)


def test_dlr_loss_is_shift_and_scale_invariant():
    torch.manual_seed(0)
    z = torch.randn(5, 10)
    y = torch.arange(5)
    assert torch.allclose(dlr_objective(z, y), dlr_objective(3 * z + 7, y), atol=1e-5)
    t = (y + 1) % 10
    assert torch.allclose(dlr_objective(z, y, t), dlr_objective(0.5 * z - 2, y, t), atol=1e-5)
    assert torch.equal(margin(z, y) < 0, z.argmax(1) != y)


def test_apgd_checkpoints_and_square_schedule():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10)[0] == 2
    assert p_selection(0.8, 0, 1000) == 0.8
    assert p_selection(0.8, 3, 1000) == 0.4  # 30 of 10,000
    assert p_selection(0.8, 75, 1000) == pytest.approx(0.8 / 16)  # 750 of 10,000
    assert p_selection(0.8, 150, 1000) == pytest.approx(0.8 / 32)
    assert p_selection(0.8, 999, 1000) == pytest.approx(0.8 / 512)


def test_dlr_needs_three_classes(batch):
    from advlens.models import build_model

    tiny = build_model("small_cnn", class_names=("a", "b"))
    x, y = batch
    with pytest.raises(AttackConfigError, match="at least 3 classes"):
        ATTACKS["apgd_dlr"](tiny, eps=0.1, steps=2)(x[:2], y[:2] % 2)


def test_acceptance_pgd_eps_03_on_digits(digits_model, digits_test):
    """Madry's MNIST budget: a standard model falls below 5% accuracy."""
    torch.manual_seed(0)
    x, y = digits_test.images, digits_test.labels
    x_adv = PGD(digits_model, eps=0.3, steps=10)(x, y)
    acc = 1 - success(digits_model, x_adv, y).float().mean().item()
    assert acc < 0.05, acc


@pytest.mark.slow
def test_acceptance_pgd_flips_efficientnet_at_2_of_255(lite0):
    from advlens.data import load_sample_photos

    photos = load_sample_photos()
    idx = [photos.item_names.index(n) for n in ("chelsea", "coffee")]
    x, y = photos.batch(idx)
    with torch.no_grad():
        assert torch.equal(lite0(x).argmax(1), y)  # correct when clean
    torch.manual_seed(0)
    res = run_attack(lite0, x, y, "pgd", eps=2 / 255, steps=10)
    assert bool(res.success.all()), res.summary()
    assert float(res.linf.max()) <= 2 / 255 + 1e-6
    assert math.isclose(res.params["eps"] * 255, 2.0)


def test_apgd_t_tries_the_top_wrong_classes_and_counts_any_misclassification(digits_model, digits_test):
    """AutoAttack's APGD-T: each target run attacks only the images still correct, and the result is
    at least as strong as a single targeted run toward the second-ranked class."""
    from advlens.attacks import APGDT

    x, y = digits_test.batch(range(64))
    torch.manual_seed(0)
    one = APGDT(digits_model, eps=0.06, steps=20, targets=1)(x, y)
    torch.manual_seed(0)
    nine = APGDT(digits_model, eps=0.06, steps=20, targets=9)(x, y)
    assert (nine - x).abs().max() <= 0.06 + 1e-6
    with torch.no_grad():
        wrong1 = digits_model(one).argmax(1) != y
        wrong9 = digits_model(nine).argmax(1) != y
    assert int(wrong9.sum()) >= int(wrong1.sum()) and bool(wrong1[wrong1].all())
    assert bool((wrong9 | ~wrong1).all())  # an image broken with one target stays broken with nine


def _official_projection_distance(kind, t, w, b):
    fab = pytest.importorskip("pyautoattack.fab_projections", reason="pyautoattack is not installed")
    d = getattr(fab, f"projection_{kind}")(t.clone(), w.clone(), b.clone())
    return d.abs().amax(1) if kind == "linf" else d.norm(dim=1)


@pytest.mark.parametrize("kind", ["linf", "l2"])
def test_fab_projections_match_the_official_ones(kind):
    """The smallest step onto a hyperplane inside the box: our bisection against AutoAttack's sort-based
    projection, on random points and planes (some out of reach, where both take the box corner)."""
    from advlens.attacks.boundary import project_l2, project_linf

    g = torch.Generator().manual_seed(0)
    t = torch.rand(64, 200, generator=g)
    w = torch.randn(64, 200, generator=g)
    b = (w * t).sum(1) + torch.randn(64, generator=g) * 3
    d = (project_linf if kind == "linf" else project_l2)(t, w, b)
    ours = d.abs().amax(1) if kind == "linf" else d.norm(dim=1)
    theirs = _official_projection_distance(kind, t, w, b)
    box = t + d
    assert float(box.min()) >= -1e-6 and float(box.max()) <= 1 + 1e-6
    reached = ((w * box).sum(1) - b).abs() < 1e-3 * w.norm(dim=1)
    assert bool(reached.float().mean() > 0.5)  # most planes are within reach, and those are hit
    assert torch.allclose(ours[reached], theirs[reached], rtol=1e-4, atol=1e-5)


def test_fab_t_agrees_with_the_official_fab_t(digits_model, digits_reference, digits_test):
    """Same images, eps, iterations and targets; FAB-T's first run per target has no random start,
    so the two are the same search: at most one image apart."""
    fab_pt = pytest.importorskip("pyautoattack.fab_pt", reason="pyautoattack is not installed")
    x, y = digits_test.batch(range(48))
    ours = ATTACKS["fab_t"](digits_model, eps=0.1, steps=20, targets=3)(x, y)
    official = fab_pt.FABAttack_PT(
        digits_reference, norm="Linf", n_restarts=1, n_iter=20, eps=0.1, targeted=True, n_target_classes=3, seed=0
    ).perturb(x, y)
    with torch.no_grad():
        a = int((digits_model(ours).argmax(1) == y).sum())
        b = int((digits_model(official).argmax(1) == y).sum())
    assert abs(a - b) <= 1 and a < 44, (a, b)


def test_apgd_l2_and_square_l2_agree_with_the_official_ones(digits_model, digits_reference, digits_test):
    autopgd = pytest.importorskip("pyautoattack.autopgd_base", reason="pyautoattack is not installed")
    from pyautoattack.square import SquareAttack

    x, y = digits_test.batch(range(64))
    torch.manual_seed(0)
    ours = ATTACKS["apgd_ce_l2"](digits_model, eps=1.5, steps=30)(x, y)
    theirs = autopgd.APGDAttack(digits_reference, norm="L2", eps=1.5, n_iter=30, n_restarts=1, seed=0).perturb(x, y)
    torch.manual_seed(0)
    ours_sq = ATTACKS["square_l2"](digits_model, eps=1.5, steps=300, rescale=False)(x, y)
    theirs_sq = SquareAttack(digits_reference, norm="L2", eps=1.5, n_queries=300, seed=0, resc_schedule=False).perturb(
        x, y
    )
    with torch.no_grad():
        acc = [int((digits_model(v).argmax(1) == y).sum()) for v in (ours, theirs, ours_sq, theirs_sq)]
    assert abs(acc[0] - acc[1]) <= 2 and acc[0] < 60, acc  # the same algorithm, different random draws
    assert abs(acc[2] - acc[3]) <= 5 and acc[2] < 62, acc  # black-box and random: a looser band
