"""The evaluation cascade: worst case per image, honest records, exact intervals, the CLI report."""

from __future__ import annotations

import json

import pytest
import torch

from advlens.evaluation import SUITES, clopper_pearson, evaluate


def shortened(name: str, steps: int = 20, targets: int = 2, queries: int = 150):
    """A registered suite with fewer iterations, targets and queries, for CI."""
    from dataclasses import replace

    def cut(attacks):
        out = []
        for attack, params in attacks:
            p = dict(params)
            p["steps"] = queries if attack.startswith("square") else steps
            if "targets" in p:
                p["targets"] = targets
            out.append((attack, p))
        return tuple(out)

    suite = SUITES[name]
    return replace(suite, linf=cut(suite.linf), l2=cut(suite.l2))


def test_clopper_pearson_matches_the_closed_forms():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-6)  # 0.3085
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 10), abs=1e-6)
    lo, hi = clopper_pearson(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.2034, abs=2e-3)
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(11, 10)


@pytest.mark.parametrize(
    "suite,norm,eps", [("quick", "Linf", 0.08), ("standard", "Linf", 0.08), ("standard", "L2", 1.2)]
)
def test_the_cascade_keeps_the_worst_case_and_every_broken_image_is_a_real_adversarial(
    suite, norm, eps, digits_model, digits_test
):
    x, y = digits_test.batch(range(48))
    short = shortened(suite)
    res = evaluate(digits_model, x, y, eps, short, norm=norm, batch_size=16, seed=0)
    assert res.n == 48 and res.clean_accuracy == 1.0
    counts = res.broken_counts()
    assert sum(counts.values()) == 48 - int(res.robust.sum())
    assert res.robust_accuracy == pytest.approx(1 - sum(counts.values()) / 48)
    for i, x_adv in res.x_adv.items():  # a broken image's point is misclassified and within the budget
        assert not res.robust[i] and res.broken_by[i] in counts
        size = (x_adv - x[i]).abs().max() if norm == "Linf" else (x_adv - x[i]).norm()
        assert float(size) <= eps + 1e-5 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
        with torch.no_grad():
            assert int(digits_model(x_adv[None]).argmax(1)) != int(y[i])
    assert len(res.x_adv) == 48 - int(res.robust.sum())
    # The second attack only ran on what the first left: it cannot be credited with more than that.
    assert counts[short.attacks(norm)[0][0]] > 0
    lo, hi = res.interval
    assert lo <= res.robust_accuracy <= hi


def test_an_evaluation_is_repeatable_and_the_first_n_images_are_used(digits_model, digits_test):
    x, y = digits_test.batch(range(32))
    short = shortened("quick", steps=25)
    a = evaluate(digits_model, x, y, 0.06, short, seed=3)
    b = evaluate(digits_model, x, y, 0.06, short, seed=3)
    assert torch.equal(a.robust, b.robust) and a.broken_by == b.broken_by
    assert "Linf eps 0.06 (15.3/255), n = 32, seed 3: apgd_ce (steps=25" in a.to_dict()["protocol"]


def test_a_stopped_evaluation_resumes_to_the_same_result(digits_model, digits_test, tmp_path):
    """Stop after the second batch, save, load, continue: the records equal an uninterrupted run."""
    from advlens.evaluation import persist

    x, y = digits_test.batch(range(40))
    short = shortened("quick", steps=15)
    whole = evaluate(digits_model, x, y, 0.07, short, batch_size=8, seed=1)
    calls = []
    part = evaluate(
        digits_model,
        x,
        y,
        0.07,
        short,
        batch_size=8,
        seed=1,
        should_stop=lambda: len(calls) >= 2,
        after_batch=calls.append,
    )
    assert part.stopped and part.position == 0 and part.next_batch == 2
    persist.save(part, tmp_path / "state")
    back = persist.load(tmp_path / "state")
    assert torch.equal(back.robust, part.robust) and back.broken_by == part.broken_by and back.next_batch == 2
    back.suite = short  # the registered suite's name was saved; the test runs the shortened one
    done = evaluate(digits_model, x, y, 0.07, short, batch_size=8, seed=1, resume=back)
    assert done.finished and not done.stopped
    assert torch.equal(done.robust, whole.robust) and done.broken_by == whole.broken_by
    assert torch.allclose(done.linf.nan_to_num(-1), whole.linf.nan_to_num(-1))


def test_a_robust_model_on_misclassified_images_counts_them_as_not_robust(digits_model, digits_test):
    x, y = digits_test.batch(range(8))
    wrong = (y + 1) % 10  # every label wrong: nothing is robust, nothing needs attacking
    res = evaluate(digits_model, x, wrong, 0.1, "quick")
    assert (
        res.clean_accuracy == 0.0
        and res.robust_accuracy == 0.0
        and res.broken_counts() == {"apgd_ce": 0, "apgd_dlr": 0}
    )


def test_the_cli_writes_a_report_that_names_its_protocol(tmp_path, capsys):
    from advlens.cli import main

    out = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "digits_small_cnn",
                "--dataset",
                "digits",
                "--eps",
                "0.05,8/255",
                "--n",
                "24",
                "--suite",
                "quick",
                "--out",
                str(out),
                "--html",
                str(tmp_path / "r.html"),
                "--csv",
                str(tmp_path / "r.csv"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "quick (APGD-CE + APGD-DLR), Linf, digits test images" in printed and "upper bound" in printed
    assert "images: the first 24 images of the digits test split (its official order)" in printed
    report = json.loads(out.read_text())
    first, second = report["results"]
    assert first["eps"] == 0.05 and second["eps_shown"] == "8/255 (0.0314)" and first["n"] == 24
    assert 0 <= first["robust_accuracy"] <= first["clean_accuracy"] and len(first["images"]) == 24
    page = (tmp_path / "r.html").read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "plotly" in page
        and "Images: the first 24 images of the digits test split" in page
    )
    assert "apgd_ce (steps=100, restarts=1) -&gt; apgd_dlr (steps=100)" in page and "torch" in page
    table = (tmp_path / "r.csv").read_text().splitlines()
    assert table[0].startswith(
        "model,norm,eps,eps_shown,suite,n,images,clean_accuracy,robust_accuracy,ci95_low,ci95_high"
    )
    assert len(table) == 3
    assert main(["evaluate", "--model", "digits_small_cnn", "--dataset", "digits", "--eps", "8"]) == 2
    assert main(["evaluate", "--model", "digits_small_cnn", "--dataset", "digits", "--eps", "0.1", "--suite", "x"]) == 2
    assert main(["evaluate", "--model", "nope", "--dataset", "digits", "--eps", "0.1"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_the_quick_suite_agrees_with_the_official_autoattack_within_one_image(
    digits_model, digits_reference, digits_test
):
    """The same attacks in the same cascade as AutoAttack's ``['apgd-ce', 'apgd-dlr']`` on 64 digits."""
    autoattack = pytest.importorskip("pyautoattack", reason="pyautoattack is not installed")
    x, y = digits_test.batch(range(64))
    ours = evaluate(digits_model, x, y, 0.1, "quick", batch_size=64)
    aa = autoattack.AutoAttack(digits_reference, attacks=["apgd-ce", "apgd-dlr"], version="custom", eps=0.1, seed=0)
    aa.logger.log = lambda *a, **k: None
    x_adv = aa.run_standard_evaluation(x, y, batch_size=64)
    x_adv = x_adv[0] if isinstance(x_adv, tuple) else x_adv
    with torch.no_grad():
        official = int((digits_model(x_adv).argmax(1) == y).sum())
    assert abs(int(ours.robust.sum()) - official) <= 1, (int(ours.robust.sum()), official)


class QuantisedInput(torch.nn.Module):
    """A "defense" that masks gradients: the input is rounded to 4 grey levels before the model,
    so the input gradient is zero almost everywhere (Athalye et al.'s shattered gradients)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.num_classes, self.input_size = inner.num_classes, inner.input_size

    def forward(self, x):
        return self.inner(torch.round(x * 3) / 3)


def test_the_checklist_clears_a_plain_model_and_flags_a_masked_one(digits_model, digits_test):
    from advlens.evaluation import run_checklist

    x, y = digits_test.batch(range(24))
    plain = evaluate(digits_model, x, y, 0.1, "quick", batch_size=24)
    checks = {c.name: c for c in run_checklist(digits_model, x, y, plain, square_queries=100, stronger=(60, 2))}
    assert len(checks) == 6 and all(c.explanation for c in checks.values())
    assert checks["gradients are finite and non-zero on most inputs"].verdict == "pass"
    assert checks["accuracy falls to about 0 at a large budget"].verdict == "pass"
    assert checks["a transfer attack from an undefended surrogate is not stronger than white-box"].verdict == "skip"

    masked = QuantisedInput(digits_model)
    result = evaluate(masked, x, y, 0.1, "quick", batch_size=24)
    assert result.robust_accuracy > plain.robust_accuracy + 0.3  # looks far more robust than it is
    flagged = {
        c.name: c
        for c in run_checklist(masked, x, y, result, surrogate=digits_model, square_queries=100, stronger=(60, 2))
    }
    assert flagged["gradients are finite and non-zero on most inputs"].verdict == "warn"
    assert flagged["a transfer attack from an undefended surrogate is not stronger than white-box"].verdict == "warn"
    assert flagged["black-box (Square) is not stronger than white-box"].verdict == "warn"
