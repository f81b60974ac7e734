"""One declaration per config (issue 27): every field of TrainConfig and EvalSpec, declared once with a
Param, has exactly one widget on the Training page, one CLI flag, and a range check that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.cli import build_parser
from advlens.cli.param_flags import dest_of
from advlens.evaluation.checklist import CHECKS
from advlens.evaluation.spec import FIELDS as EVAL_FIELDS
from advlens.evaluation.spec import EvalConfigError, EvalSpec
from advlens.params import Param
from advlens.training import jobs
from advlens.training.config import FIELDS, ConfigError, TrainConfig, validate
from advlens.training.objectives import get_objective
from dashboard.params import label_of

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "dashboard/training.py")
OLD_TRAIN_FLAGS = (  # every flag `python -m advlens train` had before the declaration: none may go
    "--objective --dataset --data-root --arch --epochs --batch-size --optimizer --lr --momentum --weight-decay "
    "--schedule --eps --eps-warmup --crop-padding --val-size --eval-size --eval-steps --eval-every --seed --device "
    "--max-steps --checkpoint-every --log-every --limit-train --init-from --name --flip --no-flip --download "
    "--no-amp --no-test-eval --param"
).split()
OLD_EVAL_FLAGS = (
    "--model --dataset --split --root --eps --norm --suite --n --num-images --offset --indices --subset-seed "
    "--batch-size --seed --checklist --no-checklist --surrogate --plain --repeats"
).split()


def subparser(name: str):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[name]


def widgets_by_key(at: AppTest) -> dict[str, list]:
    out: dict[str, list] = {}
    for kind in ("text_input", "number_input", "selectbox", "checkbox"):
        for w in getattr(at, kind):
            out.setdefault(w.key, []).append((kind, w))
    return out


def out_of_range(prm: Param):
    """A value just outside ``prm``'s range (below its minimum when it has one)."""
    step = 1 if prm.kind is int else 0.5
    if prm.min is not None:
        return prm.min if prm.min_open else prm.kind(prm.min - step)
    return prm.kind(prm.max + step)


# ---------------------------------------------------------------------------------- training
def test_the_declaration_is_the_dataclass():
    assert [p.name for p in FIELDS] == list(TrainConfig.__dataclass_fields__)
    assert len(FIELDS) == 35
    cfg = TrainConfig()
    assert all(getattr(cfg, p.name) == p.default for p in FIELDS)
    assert cfg.objective_params is not TrainConfig().objective_params  # a fresh dict per config
    again = TrainConfig.from_dict(TrainConfig(eps=8 / 255, step_milestones=(0.3, 0.6)).to_dict())
    assert again.step_milestones == (0.3, 0.6) and again.eps == pytest.approx(8 / 255)


def test_every_train_config_field_has_exactly_one_widget_on_the_training_page():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["tr_dataset"] = "mnist"  # a dataset read from files: its folder and download fields show
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    found = widgets_by_key(at)
    k = "pgd_at_mnist"
    for prm in FIELDS:
        if prm.name == "objective_params":  # one widget per hyperparameter the objective declares
            keys = sorted(key for key in found if key and key.startswith(f"tr_hp_{k}_"))
            assert keys == sorted(f"tr_hp_{k}_{h.name}" for h in get_objective("pgd_at").hyperparams)
            continue
        names = {f"tr_{prm.short}", f"tr_{prm.short}_{k}", f"tr_{prm.short}_mnist"}
        widgets = [w for key in names for w in found.get(key, [])]
        assert len(widgets) == 1, (prm.name, widgets)
        kind, widget = widgets[0]
        if prm.kind is bool:
            assert kind == "checkbox", prm.name
        elif prm.choices:
            assert kind == "selectbox" and len(widget.options) == len(prm.choices), prm.name
        elif prm.kind is int:
            assert kind == "number_input", prm.name
        if prm.name not in ("objective", "dataset"):
            assert widget.label == label_of(prm), (prm.name, widget.label)
        if prm.name != "init_from":
            assert prm.help in (widget.help or ""), (prm.name, widget.help)


def test_the_new_fields_of_the_form_reach_the_config(monkeypatch):
    submitted = []

    def submit(cfg, store=None):  # records the config instead of starting a worker
        submitted.append(cfg)
        raise OSError("not started in this test")

    monkeypatch.setattr(jobs, "submit", submit)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    k = "pgd_at_digits"
    at.number_input(key="tr_momentum").set_value(0.8)
    at.text_input(key="tr_step_milestones").input("0.3, 0.6")
    at.text_input(key=f"tr_arch_kwargs_{k}").input("hidden=32")
    at.checkbox(key="tr_amp").uncheck()
    at.number_input(key="tr_eval_every").set_value(5)
    at.number_input(key=f"tr_epochs_{k}").set_value(2)
    at = next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (cfg,) = submitted
    assert cfg.momentum == pytest.approx(0.8) and cfg.step_milestones == (0.3, 0.6)
    assert cfg.arch_kwargs == {"hidden": 32} and cfg.amp is False and cfg.eval_every == 5 and cfg.epochs == 2
    assert cfg.eps == pytest.approx(0.15) and cfg.objective_params["steps"] == 10  # digits presets
    assert at.query_params["tr_epochs"] == "2"  # the link keeps it
    bad = AppTest.from_file(PAGE, default_timeout=120).run()
    bad.text_input(key="tr_step_milestones").input("0.3, x")
    bad = next(b for b in bad.button if b.label == "Start").click().run()
    assert any("step_milestones" in e.value for e in bad.error), [e.value for e in bad.error]


def test_every_train_config_field_has_exactly_one_flag_and_no_old_flag_is_gone():
    train = subparser("train")
    for prm in FIELDS:
        actions = [a for a in train._actions if a.dest == dest_of(prm, "cfg_")]
        assert len(actions) == 1, (prm.name, [a.option_strings for a in actions])
        assert prm.cli_flags[0] in actions[0].option_strings
    flags = {opt for a in train._actions for opt in a.option_strings}
    assert set(OLD_TRAIN_FLAGS) <= flags, set(OLD_TRAIN_FLAGS) - flags
    text = train.format_help()
    assert "--step-milestones" in text and "--arch-option" in text and "--no-channels-last" in text


def test_the_flags_build_the_config():
    from advlens.cli.train import build_config

    args = build_parser().parse_args(
        "train --dataset digits --param steps=3 --param random_start=false --arch-option hidden=32 "
        "--step-milestones 0.3,0.6 --no-amp --eps 8/255 --schedule step --lr 0.05".split()
    )
    cfg = build_config(args)
    assert cfg.objective_params == {"steps": 3, "random_start": False} and cfg.arch_kwargs == {"hidden": 32}
    assert cfg.step_milestones == (0.3, 0.6) and cfg.amp is False and cfg.schedule == "step"
    assert cfg.eps == pytest.approx(8 / 255) and cfg.lr == 0.05
    assert cfg.epochs == 15  # not given: the dataset's recommended value


@pytest.mark.parametrize("prm", [p for p in FIELDS if p.is_number], ids=lambda p: p.name)
def test_validation_refuses_an_out_of_range_value_of_every_numeric_field(prm):
    assert prm.min is not None or prm.max is not None, f"{prm.name} declares no range"
    value = out_of_range(prm)
    cfg = TrainConfig(**{prm.name: value})
    with pytest.raises(ConfigError, match=rf"\b{prm.name} must be (>|>=|<=) [0-9.e+]+, not {value}\."):
        validate(cfg, check_data=False)
    validate(TrainConfig(**{prm.name: prm.default}), check_data=False)  # the default is accepted


def test_a_bad_flag_value_is_one_clear_line(capsys):
    from advlens.cli import main

    assert main(["train", "--epochs", "0", "--detach"]) == 2
    err = capsys.readouterr().err
    assert "epochs must be >= 1, not 0." in err and "Traceback" not in err
    assert main(["train", "--step-milestones", "0.5,x"]) == 2
    assert "Traceback" not in capsys.readouterr().err


# -------------------------------------------------------------------------------- evaluation
def test_every_eval_spec_field_has_a_flag_and_no_old_flag_is_gone():
    evaluate = subparser("evaluate")
    for prm in EVAL_FIELDS:
        actions = [a for a in evaluate._actions if a.dest == dest_of(prm)]
        if "internal" in prm.tags:
            assert not actions, prm.name
            continue
        assert actions, prm.name
        assert prm.cli_flags[0] in {opt for a in actions for opt in a.option_strings}, prm.name
    flags = {opt for a in evaluate._actions for opt in a.option_strings}
    assert set(OLD_EVAL_FLAGS) <= flags, set(OLD_EVAL_FLAGS) - flags


def test_the_evaluate_flags_build_the_spec():
    from advlens.cli.evaluate import build_spec

    parse = build_parser().parse_args
    spec = build_spec(parse("evaluate --model digits_small_cnn --dataset digits --eps 0.1,0.15 --plain --n 8".split()))
    assert spec.models == ["digits_small_cnn"] and spec.eps == ["0.1", "0.15"] and spec.n == 8
    assert spec.adaptive is False and spec.checklist is True and spec.batch_size == 128 and spec.split == "test"
    spec = build_spec(parse("evaluate --model a --model b --dataset digits --eps 8/255 --suite quick".split()))
    assert spec.models == ["a", "b"] and spec.checklist is False and spec.adaptive is True
    assert spec.validated().eps == [pytest.approx(8 / 255)]


@pytest.mark.parametrize("prm", [p for p in EVAL_FIELDS if p.is_number], ids=lambda p: p.name)
def test_eval_spec_refuses_an_out_of_range_value_of_every_numeric_field(prm):
    base = dict(models=["digits_small_cnn"], dataset="digits", eps=[0.1])
    with pytest.raises(EvalConfigError, match=rf"{prm.name} = .* is too (small|large): {prm.name} must be"):
        EvalSpec(**base, **{prm.name: out_of_range(prm)}).validated()
    EvalSpec(**base, **{prm.name: prm.default}).validated()


def test_eval_spec_reads_json_strictly_and_round_trips():
    base = dict(models=["m"], dataset="digits", eps=[0.1])
    with pytest.raises(EvalConfigError, match="checklist must be of type bool"):
        EvalSpec(**base, checklist=1).validated()
    with pytest.raises(EvalConfigError, match="dataset must be of type str"):
        EvalSpec(models=["m"], dataset=5, eps=[0.1]).validated()
    spec = EvalSpec(**base, n=5, indices=None).validated()
    assert EvalSpec.from_dict(spec.to_dict()) == spec


# --------------------------------------------------------------------------------- checklist
def test_the_checklist_is_six_named_checks_in_order():
    assert list(CHECKS) == [
        "accuracy falls to about 0 at a large budget",
        "black-box (Square) is not stronger than white-box",
        "more iterations and restarts do not lower accuracy much further",
        "random noise of the same size does much less than the attack",
        "gradients are finite and non-zero on most inputs",
        "a transfer attack from an undefended surrogate is not stronger than white-box",
    ]
    assert all(cls.why.endswith(".") for cls in CHECKS.values())


def test_attack_params_are_untouched_by_the_extension():
    from advlens.attacks import ATTACKS

    prm = ATTACKS["pgd"].PARAMS[0]
    assert prm.name == "eps" and prm.label == "" and prm.cli_flags == ("--eps",) and hash(prm)
    with pytest.raises(ValueError, match="eps must be <= "):
        prm.validate(2.0)
