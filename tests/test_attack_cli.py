"""``python -m advlens attack``: every attack runs, outputs are complete, bad input exits 2."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from advlens.attacks import ATTACKS
from advlens.cli import main

BASE = ["attack", "--model", "digits_small_cnn", "--dataset", "digits", "--index", "3"]
FAST_ARGS = {
    "fgsm": ["--eps", "64/255"],
    "pgd": ["--eps", "64/255", "--steps", "5"],
    "pgd_l2": ["--eps", "3", "--steps", "5"],
    "mifgsm": ["--eps", "64/255", "--steps", "5"],
    "stepll": ["--eps", "64/255"],
    "deepfool": ["--steps", "20"],
    "cw": ["--steps", "30", "--set", "binary_steps=2", "--set", "lr=0.05"],
    "square": ["--eps", "64/255", "--steps", "100"],
    "apgd_ce": ["--eps", "64/255", "--steps", "10"],
    "apgd_dlr": ["--eps", "64/255", "--steps", "10"],
    "apgd_t": ["--eps", "64/255", "--steps", "10", "--set", "targets=2"],
    "fab_t": ["--eps", "64/255", "--steps", "20", "--set", "targets=2"],
    "square_l2": ["--eps", "3", "--steps", "300"],
    "square_l1": ["--eps", "30", "--steps", "300"],
    "apgd_ce_l2": ["--eps", "3", "--steps", "10"],
    "apgd_dlr_l2": ["--eps", "3", "--steps", "10"],
    "apgd_t_l2": ["--eps", "3", "--steps", "10", "--set", "targets=2"],
    "fab_t_l2": ["--eps", "3", "--steps", "20", "--set", "targets=2"],
    "hopskipjump": ["--steps", "3"],
    "hopskipjump_linf": ["--steps", "3"],
    "difgsm": ["--eps", "64/255", "--steps", "5"],
    "tifgsm": ["--eps", "64/255", "--steps", "5"],
    "apgd_ce_l1": ["--eps", "20", "--steps", "10"],
    "apgd_dlr_l1": ["--eps", "20", "--steps", "10"],
    "apgd_t_l1": ["--eps", "20", "--steps", "10", "--set", "targets=2"],
    "fab_t_l1": ["--eps", "20", "--steps", "20", "--set", "targets=2"],
    "fmn_l0": ["--steps", "100"],
    "fmn_l1": ["--steps", "20"],
    "fmn_l2": ["--steps", "20"],
    "fmn_linf": ["--steps", "20"],
    "sparse_rs": ["--eps", "60", "--steps", "300"],
}


def test_every_attack_has_a_cli_case():
    assert set(FAST_ARGS) == set(ATTACKS)


@pytest.mark.parametrize("name", list(FAST_ARGS))
def test_each_attack_runs_from_the_cli(name, capsys):
    assert main(BASE + ["--attack", name, *FAST_ARGS[name]]) == 0
    out = capsys.readouterr().out
    ranks = [ln for ln in out.splitlines() if ln.strip()[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(ranks) == 5 and "L-inf" in out and "L2" in out
    assert "success: yes" in out, out


def test_json_output_has_norms_within_budget(capsys):
    assert main(BASE + ["--attack", "pgd", "--eps", "40/255", "--steps", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["attack"] == "pgd" and report["params"]["eps"] == pytest.approx(40 / 255)
    assert report["params_display"]["eps"] == "40/255 (0.1569)"
    res = report["result"]
    assert res["label"] == 7 and not res["label_from_prediction"]
    assert 0 < res["linf_255"] <= 40 + 1e-3 and res["l2"] > 0
    assert len(report["clean_top"]) == 5 and report["clean_top"][0]["class"] == "7"
    assert res["success"] == (report["adv_top"][0]["class"] != "7")


def test_targeted_by_class_name_and_saved_outputs(tmp_path, capsys):
    out = tmp_path / "adv.png"
    assert main(BASE + ["--attack", "pgd", "--eps", "80/255", "--steps", "20", "--target", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "targeted at 1" in text and "success: yes" in text
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (28, 28) and img.dtype == np.uint8
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["target"] == 1 and settings["image"] == {
        "kind": "dataset",
        "dataset": "digits",
        "split": "test",
        "index": 3,
    }
    assert settings["result"]["adv_pred"] == "1"
    assert settings["png"]["bits"] == 8 and settings["png"]["linf"] * 255 <= 80 + 1e-3


def test_image_file_input(tmp_path, capsys, digits_test):
    x, _ = digits_test.item(3)
    path = tmp_path / "digit.png"
    cv2.imwrite(str(path), (x[0, 0].numpy() * 255).round().astype(np.uint8))
    assert (
        main(["attack", "--model", "digits_small_cnn", "--image", str(path), "--attack", "fgsm", "--eps", "64/255"])
        == 0
    )
    out = capsys.readouterr().out
    assert "true class 7 (clean prediction)" in out


def test_list_shows_parameters(capsys):
    assert main(["attack", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ATTACKS:
        assert name in out
    assert "8/255 (0.0314)" in out


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--attack", "pgd", "--eps=-1/255"], "eps = -1/255 (-0.0039) is too small"),
        (["--attack", "pgd", "--eps", "300/255"], "eps = 300/255 (1.1765) is too large"),
        (["--attack", "pgd", "--eps", "8"], "write 8/255"),
        (["--attack", "pgd", "--steps", "0"], "steps = 0 is too small"),
        (["--attack", "pgd", "--target", "10"], "target class 10 is out of range"),
        (["--attack", "pgd", "--target", "cat"], "unknown target class 'cat'"),
        (["--attack", "pgd", "--target", "7"], "must differ from the true class"),
        (["--attack", "nope"], "unknown attack 'nope'"),
        (["--attack", "fgsm", "--restarts", "2"], "fgsm has no restarts parameter"),
        (["--attack", "deepfool", "--eps", "8/255"], "deepfool has no eps parameter"),
        (["--attack", "mifgsm", "--set", "decay"], "NAME=VALUE"),
        (["--attack", "mifgsm", "--set", "momentum=1"], "no parameter 'momentum'"),
        (["--attack", "mifgsm", "--set", "decay=abc"], "decay must be a number"),
        (["--attack", "pgd", "--out", "adv.jpg"], "must end in .png"),
    ],
)
def test_bad_parameters_exit_2_with_a_message(extra, match, capsys):
    assert main(BASE + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["attack", "--model", "digits_small_cnn", "--dataset", "digits"], "--dataset needs --index"),
        (["attack", "--model", "digits_small_cnn", "--dataset", "digits", "--index", "999"], "out of range"),
        (["attack", "--model", "digits_small_cnn"], "give an image"),
        (["attack", "--dataset", "digits", "--index", "0"], "--model is required"),
        (["attack", "--model", "digits_small_cnn", "--image", "missing.png"], "no image at"),
    ],
)
def test_bad_inputs_exit_2(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err
