"""The Attack Lab's "one image, many views": every attack in one table, and the eps sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlens.attacks import AttackConfigError
from advlens.attacks.compare import COMPARED, compare_attacks, eps_sweep
from advlens.data import load_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digit():
    ds = load_digits("test")
    return ds.item(0)


def test_every_attack_in_one_table_respects_its_budget(digits_model, digit):
    x, y = digit
    eps = 0.1
    rows = compare_attacks(digits_model, x, y, eps, search=False)
    assert [r.attack for r in rows] == list(COMPARED)
    for r in rows:
        assert r.seconds >= 0 and r.l2 >= 0
        if r.budgeted:
            assert r.linf <= eps + 1e-6, r.attack  # the shared budget holds for every L-inf attack
            assert r.min_eps is None  # no search asked for
        elif r.success:
            assert r.min_eps == pytest.approx(r.linf)  # minimal-norm attacks report their own L-inf
    by = {r.attack: r for r in rows}
    assert by["pgd"].success and by["apgd_ce"].success  # 0.1 breaks this digit (min eps ~0.05)
    assert by["pgd"].predicted != y


def test_smallest_eps_search_brackets_the_budget(digits_model, digit):
    x, y = digit
    rows = compare_attacks(digits_model, x, y, 0.1, names=("fgsm", "pgd"), max_eps=32 / 255, tol=1 / 255)
    for r in rows:
        assert r.min_eps is not None and 0 < r.min_eps <= 32 / 255
        torch.manual_seed(0)
        from advlens.attacks import run_attack

        # the bisection's answer flips the image, and a budget 2 steps of tolerance below it does not
        assert bool(run_attack(digits_model, x, y, r.attack, eps=r.min_eps).success[0])
        below = max(0.0, r.min_eps - 2 / 255)
        if below > 0:
            torch.manual_seed(0)  # the search's seed: the same random start
            assert not bool(run_attack(digits_model, x, y, r.attack, eps=below).success[0])


def test_sweep_reports_prediction_against_eps(digits_model, digit):
    x, y = digit
    points = eps_sweep(digits_model, x, y, "pgd", (0.0, 0.2, 0.05))
    assert [p.eps for p in points] == [0.0, 0.05, 0.2]  # sorted
    assert not points[0].success and points[0].predicted == y
    assert points[-1].success and points[-1].predicted != y
    for p in points:
        assert 0 <= p.true_probability <= 1 and 0 < p.confidence <= 1


def test_bad_requests_are_refused_before_any_work(digits_model, digit):
    x, y = digit
    with pytest.raises(AttackConfigError, match="one image"):
        compare_attacks(digits_model, torch.cat([x, x]), None)
    with pytest.raises(AttackConfigError, match="unknown attack"):
        compare_attacks(digits_model, x, y, names=("nope",))
    with pytest.raises(AttackConfigError, match="L-inf attack"):
        eps_sweep(digits_model, x, y, "deepfool", (0.1,))
    with pytest.raises(AttackConfigError, match="1 to 64 budgets"):
        eps_sweep(digits_model, x, y, "pgd", (2.0,))


def test_attack_lab_compares_and_sweeps():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=240)
    at.query_params.update({"model": "digits_small_cnn", "sweep_n": "5", "cmp_search": "0"})
    at.run()
    assert not at.exception
    assert at.checkbox(key="cmp_search").value is False  # read from the link
    next(b for b in at.button if b.key == "cmp_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == len(COMPARED) and "PGD (L-inf)" in list(table["attack"])
    next(b for b in at.button if b.key == "sweep_run").click().run()
    assert not at.exception
    assert any("prediction first changes" in str(c.value) or "No budget" in str(c.value) for c in at.caption)
    assert at.query_params["sweep_n"] == ["5"] or at.query_params["sweep_n"] == "5"
