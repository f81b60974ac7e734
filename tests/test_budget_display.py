"""One budget, one form on every page (AppTest): the Attack Lab, Attention, Features, Compare and
Training pages show the same L-inf budget as ``8/255 (0.0314)`` (``0.3 (76.5/255)``), for a colour and a one-channel model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.budget import format_linf, linf_text, parse_linf

ROOT = Path(__file__).resolve().parents[1]
SHOWN = "8/255 (0.0314)"
TIMEOUT = 240


def page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("caption", "markdown", "info") for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def colour_models():
    """Two CIFAR-shaped (3x32x32) checkpoints in this test's ADVLENS_HOME: a colour model for every page."""
    import torch

    from advlens.models import build_model, save_checkpoint
    from advlens.paths import user_models_dir

    for i, name in enumerate(("cifar_a", "cifar_b")):
        torch.manual_seed(i)
        save_checkpoint(build_model("preact_resnet18"), user_models_dir() / name)
    return "cifar_a", "cifar_b"


def test_the_budget_rule():
    assert format_linf(8 / 255) == SHOWN and format_linf(0.3) == "0.3 (76.5/255)" and format_linf(0) == "0 (0/255)"
    assert parse_linf("8/255") == pytest.approx(8 / 255) and parse_linf("0.0314") == 0.0314
    assert parse_linf(linf_text(0.15)) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="write 8/255"):
        parse_linf("8")
    with pytest.raises(ValueError, match="fraction such as 8/255"):
        parse_linf("eight")


@pytest.mark.parametrize("kind", ["one-channel", "colour"])
def test_every_page_shows_the_budget_in_one_form(kind, request):
    if kind == "colour":
        model, other = request.getfixturevalue("colour_models")
        dataset = "cifar10"
    else:
        model, other, dataset = "digits_small_cnn", None, "digits"

    lab = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=TIMEOUT)
    lab.query_params.update(model=model, attack="pgd", eps="8/255", steps="2")
    _run(lab)
    assert SHOWN in page_text(lab)  # the field's reading
    assert "/255 (" in next(m.value for m in lab.metric if m.label == "L-inf")  # the measured norm, same form
    current = lab.session_state["advlens_current_example"]

    for path, key in (("dashboard/attention.py", "att"), ("dashboard/features.py", "feat")):
        shared = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
        shared.session_state["advlens_current_example"] = current  # the Attack Lab's example
        assert SHOWN in page_text(_run(shared)), path
        own = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
        own.query_params["model"] = model
        own.session_state[f"{key}_eps"] = "0.0314"  # either form is read, one form is shown
        own.session_state[f"{key}_steps"] = 2
        assert "0.0314 (8.007/255)" in page_text(_run(own)), path

    if other is not None:
        cmp = AppTest.from_file(str(ROOT / "dashboard/compare.py"), default_timeout=TIMEOUT)
        cmp.query_params.update(cmp_a=model, cmp_b=other)
        _run(cmp)
        assert SHOWN in page_text(cmp)  # a colour model's suggested budget
        assert at_eps_field(cmp).value == "8/255"
    else:
        cmp = AppTest.from_file(str(ROOT / "dashboard/compare.py"), default_timeout=TIMEOUT)
        cmp.query_params.update(cmp_a=model, cmp_b=model)
        _run(cmp)
        assert "32/255 (0.1255)" in page_text(cmp)  # the one-channel suggestion, in the same form

    train = AppTest.from_file(str(ROOT / "dashboard/training.py"), default_timeout=TIMEOUT)
    train.session_state["tr_dataset"] = dataset
    train.session_state[f"tr_eps_pgd_at_{dataset}"] = "8/255"
    assert SHOWN in page_text(_run(train))


def at_eps_field(at: AppTest):
    return next(t for t in at.text_input if t.key.startswith("cmp_pgd_") and t.key.endswith("_eps"))
