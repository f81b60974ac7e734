"""Randomized smoothing: predict, certify, the Gaussian-augmentation objective, the CLI and pages (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from scipy.stats import beta, norm

from advlens.data import to_float
from advlens.models.defended import DefendedClassifier
from advlens.smoothing import (
    ABSTAIN,
    Certificate,
    Stopped,
    certified_accuracy,
    certify,
    certify_batch,
    lower_confidence_bound,
    predict,
)
from advlens.transforms import parse_chain

ROOT = Path(__file__).resolve().parents[1]


class Constant(torch.nn.Module):
    """Predicts ``cls`` on every input; with ``coin``, a fair coin between classes 0 and 1."""

    num_classes = 3

    def __init__(self, cls: int = 2, coin: bool = False):
        super().__init__()
        self.cls, self.coin = cls, coin

    def forward(self, x):
        out = torch.zeros(len(x), self.num_classes)
        if self.coin:
            out[torch.arange(len(x)), torch.randint(0, 2, (len(x),))] = 1.0
        else:
            out[:, self.cls] = 1.0
        return out


def test_the_lower_bound_is_the_one_sided_clopper_pearson_bound():
    assert lower_confidence_bound(990, 1000, 0.001) == pytest.approx(float(beta.ppf(0.001, 990, 11)))
    assert lower_confidence_bound(0, 100, 0.001) == 0.0


def test_certify_a_constant_classifier_gives_the_closed_form_radius():
    torch.manual_seed(0)
    cert = certify(Constant(2), torch.zeros(1, 4, 4), sigma=0.5, n0=20, n=1000, alpha=0.001)
    p_lower = 0.001 ** (1 / 1000)  # all n samples agree: the bound solves p^n = alpha
    assert cert.prediction == 2 and cert.count == 1000
    assert cert.p_lower == pytest.approx(p_lower, rel=1e-6)
    assert cert.radius == pytest.approx(0.5 * norm.ppf(p_lower), rel=1e-5)


def test_a_coin_flip_abstains_in_both_procedures():
    torch.manual_seed(0)
    assert certify(Constant(coin=True), torch.zeros(1, 4, 4), sigma=0.25, n0=20, n=400).prediction == ABSTAIN
    assert predict(Constant(coin=True), torch.zeros(1, 4, 4), sigma=0.25, n=400) == ABSTAIN
    assert predict(Constant(1), torch.zeros(1, 4, 4), sigma=0.25, n=100) == 1


def test_settings_are_checked_and_a_stop_keeps_the_finished_images():
    for kwargs, says in (
        ({"sigma": 0}, "sigma"),
        ({"sigma": 0.25, "n": 0}, "n must"),
        ({"sigma": 0.25, "alpha": 0.7}, "alpha"),
    ):
        with pytest.raises(ValueError, match=says):
            certify(Constant(), torch.zeros(1, 4, 4), **kwargs)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Stopped) as info:
        certify_batch(Constant(), torch.zeros(5, 1, 4, 4), 0.25, n0=10, n=2000, should_stop=stop)
    assert 0 < len(info.value.partial) < 5


def test_certified_accuracy_counts_correct_images_with_a_large_enough_radius():
    certs = [Certificate(1, 0.6, 0.99, 990, 1000, 0.1), Certificate(1, 0.2, 0.8, 800, 1000, 0.1),
             Certificate(ABSTAIN, 0.0, 0.4, 400, 1000, 0.1), Certificate(2, 0.9, 0.99, 990, 1000, 0.1)]  # fmt: skip
    assert certified_accuracy(certs, [1, 1, 1, 1], [0.0, 0.5, 1.0]) == [0.5, 0.25, 0.0]


def test_no_certified_digit_is_flipped_by_a_smaller_l2_attack_on_the_smoothed_classifier(digits_model, digits_test):
    """The consistency check of the issue, on a few digits: PGD-L2 with EOT over the noise (an
    attack on the smoothed classifier) at 90% of the certified radius never changes g(x)."""
    from advlens.attacks import ATTACKS

    x, y = digits_test.batch(range(4))
    x = to_float(x)
    sigma = 0.25
    noisy = DefendedClassifier(digits_model, parse_chain(f"noise{sigma}"))
    torch.manual_seed(0)
    for i in range(len(x)):
        cert = certify(digits_model, x[i], sigma, n0=100, n=2000)
        if cert.prediction == ABSTAIN:
            continue
        target = torch.tensor([cert.prediction])
        x_adv = ATTACKS["pgd_l2"](noisy, eps=0.9 * cert.radius, steps=10, eot=8)(x[i : i + 1], target)
        assert (x_adv - x[i : i + 1]).norm() <= 0.9 * cert.radius + 1e-4
        assert predict(digits_model, x_adv[0], sigma, n=2000) in (cert.prediction, ABSTAIN)


def test_gaussian_augmentation_trains_a_noise_robust_base_classifier(digits_model, digits_test):
    from advlens.training.config import TrainConfig
    from advlens.training.jobs import run_in_foreground
    from advlens.zoo import load_model

    cfg = TrainConfig(
        objective="gaussian_aug", objective_params={"sigma": 1.0}, dataset="digits", epochs=4, batch_size=64, lr=2e-3
    )
    rec = run_in_foreground(cfg)
    assert rec.status == "done", rec.message
    model = load_model(rec.zoo_name, "cpu")
    x, y = digits_test.batch(range(360))
    x = to_float(x)
    torch.manual_seed(0)
    noisy = x + 1.0 * torch.randn_like(x)  # the standard model keeps about half of the digits
    with torch.no_grad():
        trained = float((model(noisy).argmax(1) == y).float().mean())
        standard = float((digits_model(noisy).argmax(1) == y).float().mean())
    assert trained >= 0.65 and trained >= standard + 0.1, (trained, standard)


def test_cli_certify_prints_and_writes_each_radius(tmp_path, capsys):
    from advlens.cli import main

    out = tmp_path / "certify.json"
    args = ["certify", "--model", "digits_small_cnn", "--sigma", "0.25", "--n", "500", "--images", "3"]
    assert main([*args, "--radii", "0,0.25,0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "image     0:" in printed and "radius 0.25:" in printed
    report = json.loads(out.read_text())
    assert len(report["images"]) == 3 and report["n"] == 500
    assert [r["radius"] for r in report["certified_accuracy"]] == [0.0, 0.25, 0.5]
    assert all(im["radius"] >= 0 for im in report["images"])
    assert main(["certify", "--model", "digits_small_cnn", "--sigma", "-1"]) == 2
    assert "sigma" in capsys.readouterr().err


def test_evaluate_page_certifies_and_draws_the_curve():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard/evaluate.py"), default_timeout=240)
    at.run()
    assert not at.exception
    at.selectbox(key="cert_model").set_value("digits_small_cnn")
    at.selectbox(key="cert_dataset").set_value("digits")
    at.number_input(key="cert_images").set_value(2)
    at.number_input(key="cert_n").set_value(200)
    at.button(key="FormSubmitter:cert_form-Certify").click().run()
    assert not at.exception and not at.error
    assert any("Abstained on" in c.value for c in at.caption)
