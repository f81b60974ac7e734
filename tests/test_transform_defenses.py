"""Input-transform defenses, BPDA and EOT, defended model names, and their evaluation (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from advlens.attacks import ATTACKS
from advlens.data import to_float
from advlens.models.defended import DefendedClassifier, bpda_view, transformed_inputs
from advlens.models.modes import model_lock
from advlens.transforms import TransformError, parse_chain, split_name

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ("jpeg75", "bits3", "median3", "rrp0.1", "noise0.25", "mean3", "bilateral5", "nlmeans", "nldot")
EXPECTED = {  # token: (differentiable, random)
    "jpeg75": (False, False),
    "bits3": (False, False),
    "median3": (False, False),
    "rrp0.1": (False, True),
    "noise0.25": (True, True),
    "mean3": (True, False),
    "bilateral5": (True, False),
    "nlmeans": (True, False),
    "nldot": (True, False),
}


@pytest.fixture(scope="module")
def digits64(digits_test):
    x, y = digits_test.batch(range(64))
    return to_float(x), y


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ----- the transforms -------------------------------------------------------------------------------
@pytest.mark.parametrize("token", TOKENS)
def test_each_transform_says_what_it_is_and_keeps_the_shape(token):
    (t,) = parse_chain(token)
    assert t.token == token and (t.differentiable, t.random) == EXPECTED[token]
    x = torch.rand(3, 1, 28, 28)
    out = t(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    x3 = torch.rand(2, 3, 32, 32)
    assert t(x3).shape == x3.shape


def test_jpeg_and_median_are_opencv_and_bits_keep_2_to_the_b_levels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    x = torch.from_numpy(img).float().div(255).view(1, 1, 28, 28)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    want = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert np.allclose(parse_chain("jpeg75")[0](x)[0, 0].numpy(), want)
    want = cv2.medianBlur(x[0, 0].numpy(), 3)
    assert np.allclose(parse_chain("median3")[0](x)[0, 0].numpy(), want)
    levels = parse_chain("bits3")[0](torch.rand(4, 1, 28, 28)).unique()
    assert len(levels) <= 8 and torch.allclose(levels * 7, (levels * 7).round())


def test_bpda_stand_ins_match_the_transforms():
    from defenses.denoise import median_filter

    x = torch.rand(4, 3, 32, 32)
    (rrp,) = parse_chain("rrp0.2")
    draw = rrp.sample(x)
    assert (rrp.apply(x, draw) - rrp.approximate(x, draw)).abs().max() < 1e-4
    (med,) = parse_chain("median3")
    assert (med.apply(x, None) - median_filter(x, 3)).abs().max() < 1e-6  # OpenCV's median is the torch one
    assert torch.allclose(med.approximate(x, None), 0.5 * (x + median_filter(x, 3)))


@pytest.mark.parametrize("token", TOKENS)
def test_plain_gradients_are_shattered_and_bpda_restores_them(token):
    (t,) = parse_chain(token)
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    (plain,) = torch.autograd.grad(t(x).sum(), x)
    (bpda,) = torch.autograd.grad(t(x, bpda=True).sum(), x)
    assert bpda.abs().sum() > 0
    assert (plain.abs().sum() > 0) == t.differentiable


@pytest.mark.parametrize(
    "text, says",
    [
        ("jpeg0", "quality must be >= 1"),
        ("foo3", "unknown input transform 'foo3'"),
        ("median4", "one of 3, 5"),
        ("bits3.5", "whole number"),
        ("jpeg75+", "joined by '+'"),
        ("nlmeans3", "takes no setting"),
        ("+".join(["bits3"] * 9), "at most 8"),
    ],
)
def test_bad_chains_get_a_clear_message(text, says):
    with pytest.raises(TransformError, match=None) as info:
        parse_chain(text)
    assert says in str(info.value)


def test_names_split_into_a_base_and_a_chain():
    base, chain = split_name("digits_small_cnn+bits3+median3")
    assert base == "digits_small_cnn" and [t.token for t in chain] == ["bits3", "median3"]
    assert split_name("digits_small_cnn") == ("digits_small_cnn", [])


# ----- defended models ------------------------------------------------------------------------------
def test_a_defended_name_works_wherever_a_model_name_does():
    from advlens.zoo import get_entry, load_model

    entry = get_entry("digits_small_cnn+jpeg75")
    assert (entry.source, entry.arch, entry.input_size) == ("defended", "small_cnn", (1, 28, 28))
    model = load_model("digits_small_cnn+jpeg75", "cpu")
    assert isinstance(model, DefendedClassifier) and model.zoo_name == "digits_small_cnn+jpeg75"
    assert "net.conv2" in dict(model.named_modules())  # the base's layer names: CAMs and features work
    for bad, says in (
        ("nope+jpeg75", "unknown base model 'nope'"),
        ("digits_small_cnn+foo", "unknown input transform"),
        ("efficientnet_lite0+nlmeans", "64x64"),
    ):
        with pytest.raises(KeyError, match=says):
            get_entry(bad)


def test_a_defended_model_shares_the_base_and_never_changes_it(digits_model, digits64):
    x, y = digits64
    before = {k: v.clone() for k, v in digits_model.state_dict().items()}
    model = DefendedClassifier(digits_model, parse_chain("jpeg75+rrp0.1"))
    assert model.net is digits_model.net and model_lock(model) is model_lock(digits_model)
    view = bpda_view(model)
    assert view is not model and view.bpda and not model.bpda and model_lock(view) is model_lock(digits_model)
    assert len(list(model.parameters())) == len(list(digits_model.parameters()))
    torch.manual_seed(0)
    ATTACKS["pgd"](model, eps=0.1, steps=3, bpda=True, eot=2)(x[:8], y[:8])
    for k, v in digits_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    tx, tx_adv = transformed_inputs(model, x[:2], x[2:4])
    assert tx.shape == (2, 1, 28, 28) and 0 <= float(tx.min()) and float(tx.max()) <= 1


def test_saved_defenses_are_small_recipes_in_the_zoo():
    from advlens.paths import user_models_dir
    from advlens.zoo import get_entry, list_models, load_model, save_defense

    entry = save_defense("squeezed", "digits_small_cnn+bits3+median3")
    assert entry.name == "squeezed" and entry.source == "saved defense"
    recipe = json.loads((user_models_dir() / "squeezed.defense.json").read_text())
    assert recipe["model"] == "digits_small_cnn+bits3+median3"
    model = load_model("squeezed", "cpu")
    assert [t.token for t in model.chain] == ["bits3", "median3"] and model.zoo_name == "squeezed"
    stacked = load_model("squeezed+jpeg75", "cpu")  # a saved defense is a base like any other: one flat chain
    assert [t.token for t in stacked.chain] == ["bits3", "median3", "jpeg75"] and stacked.base.spec.arch == "small_cnn"
    with pytest.raises(KeyError, match="exists already"):
        save_defense("digits_small_cnn", "digits_small_cnn+jpeg75")
    (user_models_dir() / "broken.defense.json").write_text('{"model": "gone+jpeg75"}')
    listed = {e.name: e for e in list_models(include_unreadable=True)}
    assert "gone" in listed["broken"].problem and "broken" not in {e.name for e in list_models()}
    assert get_entry("squeezed").metrics["defends"] == "digits_small_cnn+bits3+median3"
    from advlens.training.config import ConfigError
    from advlens.training.init_from import resolve_init_path

    with pytest.raises(ConfigError, match="start from its base model"):  # a recipe has no weights to fine-tune
        resolve_init_path("squeezed")


# ----- adaptive attacks -----------------------------------------------------------------------------
def test_plain_pgd_fails_and_bpda_breaks_jpeg(digits_model, digits64):
    x, y = digits64
    model = DefendedClassifier(digits_model, parse_chain("jpeg75"))
    torch.manual_seed(0)
    bare = accuracy(digits_model, ATTACKS["pgd"](digits_model, eps=0.1, steps=20)(x, y), y)
    torch.manual_seed(0)
    plain = accuracy(model, ATTACKS["pgd"](model, eps=0.1, steps=20)(x, y), y)
    torch.manual_seed(0)
    adaptive = accuracy(model, ATTACKS["pgd"](model, eps=0.1, steps=20, bpda=True)(x, y), y)
    assert plain >= 0.9 and adaptive <= bare + 0.12 and plain - adaptive >= 0.5, (bare, plain, adaptive)


def test_eot_averages_gradients_over_draws(digits_model, digits64):
    from advlens.attacks.adaptive import loss_gradient

    x, y = digits64
    model = DefendedClassifier(digits_model, parse_chain("noise0.5"))
    objective = torch.nn.CrossEntropyLoss(reduction="none")
    torch.manual_seed(0)
    one = [loss_gradient(model, x[:4], lambda z: objective(z, y[:4]))[0] for _ in range(2)]
    torch.manual_seed(0)
    many = [loss_gradient(model, x[:4], lambda z: objective(z, y[:4]), draws=32)[0] for _ in range(2)]

    def spread(g):
        return float((g[0] - g[1]).norm() / (g[0].norm() + g[1].norm()))

    assert spread(many) < 0.5 * spread(one)  # averaging draws makes the gradient estimate stable


def test_bpda_and_eot_break_random_resize_and_pad(digits_model, digits64):
    x, y = digits64
    model = DefendedClassifier(digits_model, parse_chain("rrp0.1"))
    torch.manual_seed(0)
    plain = accuracy(model, ATTACKS["pgd"](model, eps=0.1, steps=10)(x, y), y)
    torch.manual_seed(0)
    adaptive = accuracy(model, ATTACKS["pgd"](model, eps=0.1, steps=10, bpda=True, eot=4)(x, y), y)
    assert plain >= 0.85 and adaptive <= 0.45, (plain, adaptive)


# ----- evaluation -----------------------------------------------------------------------------------
def test_evaluation_is_adaptive_by_itself_and_the_checklist_tells_plain_from_adaptive(digits_model, digits64):
    from advlens.evaluation import evaluate, run_checklist

    x, y = digits64
    x, y = x[:32], y[:32]
    model = DefendedClassifier(digits_model, parse_chain("bits3"))
    plain = evaluate(model, x, y, 0.1, "quick", adaptive=False)
    adaptive = evaluate(model, x, y, 0.1, "quick")
    assert "plain attacks" in plain.protocol() and "BPDA through bits3" in adaptive.protocol()
    assert plain.robust_accuracy >= 0.9 and adaptive.robust_accuracy <= 0.5
    verdicts = {}
    for name, result in (("plain", plain), ("adaptive", adaptive)):
        checks = run_checklist(model, x, y, result, surrogate=digits_model, square_queries=100, stronger=(20, 1))
        verdicts[name] = {c.name: c.verdict for c in checks}
    gradients = "gradients are finite and non-zero on most inputs"
    transfer = "a transfer attack from an undefended surrogate is not stronger than white-box"
    assert verdicts["plain"][gradients] == "warn" and verdicts["adaptive"][gradients] == "pass"
    assert verdicts["plain"][transfer] == "warn" and verdicts["adaptive"][transfer] == "pass"


def test_a_random_defense_gets_the_rand_suite(digits_model):
    from advlens.evaluation.cascade import adapted_suite
    from advlens.evaluation.suites import get_suite

    model = DefendedClassifier(digits_model, parse_chain("rrp0.1"))
    suite, words = adapted_suite(model, get_suite("standard"), True)
    assert suite.name == "rand" and "EOT over 20 draws" in words and "BPDA through rrp0.1" in words
    assert adapted_suite(digits_model, get_suite("standard"), True) == (get_suite("standard"), "")


def test_cli_evaluate_and_attack_take_defended_names(capsys):
    from advlens.cli import main

    args = ["evaluate", "--model", "digits_small_cnn+jpeg75", "--dataset", "digits", "--eps", "0.1"]
    assert main([*args, "--suite", "quick", "--n", "16", "--no-checklist"]) == 0
    out = capsys.readouterr().out
    assert "adaptive: BPDA through jpeg75 by the identity" in out and "n = 16" in out
    attack = ["attack", "--model", "digits_small_cnn+median3", "--dataset", "digits", "--index", "0"]
    assert main([*attack, "--eps", "0.3", "--bpda", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["bpda"] is True and report["result"]["success"]
    assert (
        main(["attack", "--model", "digits_small_cnn+jpeg", "--dataset", "digits", "--index", "0", "--eot", "0"]) == 2
    )
    assert "eot" in capsys.readouterr().err


# ----- pages ----------------------------------------------------------------------------------------
def test_attack_lab_shows_the_defense_and_bpda_from_the_link():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=240)
    at.query_params.update({"model": "digits_small_cnn+jpeg75", "attack": "pgd", "eps": "0.3"})
    at.run()
    assert not at.exception
    assert at.text_input(key="model_defense").value == "jpeg75"
    assert any("turn on **bpda**" in i.value for i in at.info)
    assert any("After the defense" in m.value for m in at.markdown)
    assert {m.label: m.value for m in at.metric}["Success"] == "no"  # plain PGD is blind
    at.checkbox(key="atk_pgd_bpda").check().run()
    assert {m.label: m.value for m in at.metric}["Success"] == "yes"
    assert at.query_params["bpda"] in ("1", ["1"])
    at.text_input(key="model_defense").set_value("jpeg75+nope").run()
    assert not at.exception and any("Defense not understood" in e.value for e in at.error)


def test_repeated_evaluations_of_a_random_defense_report_their_spread(digits_test):
    from advlens.evaluation import EvalSpec
    from advlens.evaluation.jobs import run_spec

    spec = EvalSpec(  # plain attacks keep it cheap; the adaptive suite of a random defense is tested above
        models=["digits_small_cnn+noise0.3"],
        dataset="digits",
        eps=[0.05],
        suite="quick",
        n=4,
        repeats=2,
        checklist=False,
        adaptive=False,
    )
    (record,) = run_spec(spec.validated())["results"]
    assert record["suite"] == "quick" and "plain attacks" in record["protocol"]
    spread = record["spread"]
    assert len(spread["runs"]) == 2 and spread["min"] <= spread["mean"] <= spread["max"] and spread["sd"] >= 0
