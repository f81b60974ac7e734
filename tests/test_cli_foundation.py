"""The command line: help, predict, the catalogue, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from advlens.cli import main
from advlens.data import sample_photo


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "advlens", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("predict", "models", "datasets"):
        assert cmd in out.stdout


def test_predict_prints_top5(tmp_path, capsys):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(sample_photo("coffee"), cv2.COLOR_RGB2BGR))
    assert main(["predict", "--model", "efficientnet_lite0", "--image", str(path)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(lines) == 5 and "espresso" in lines[0]


def test_predict_digit_png(tmp_path, capsys, digits_test):
    x, y = digits_test.item(0)
    path = tmp_path / "digit.png"
    cv2.imwrite(str(path), (x[0, 0].numpy() * 255).astype(np.uint8))
    assert main(["predict", "--model", "digits_small_cnn", "--image", str(path)]) == 0
    first = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("1.")][0]
    assert first.split()[1] == str(y)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["predict", "--model", "nope", "--image", "{img}"], "unknown model"),
        (["predict", "--model", "digits_small_cnn", "--image", "/no/such.png"], "no image"),
        (["predict", "--model", "digits_small_cnn", "--image", "{bad}"], "could not be decoded"),
    ],
)
def test_predict_errors_are_clear(tmp_path, capsys, argv, match):
    img = tmp_path / "ok.png"
    cv2.imwrite(str(img), np.zeros((28, 28), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    argv = [a.format(img=img, bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and match in err and "Traceback" not in err


def test_models_and_datasets_commands(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "digits_small_cnn" in out
    assert main(["datasets"]) == 0
    assert "mnist" in capsys.readouterr().out


def test_cpu_flag_forces_cpu(capsys):
    from advlens.device import force_cpu

    try:
        assert main(["--cpu", "device"]) == 0
        assert capsys.readouterr().out.startswith("cpu")
    finally:
        force_cpu(False)


def test_import_command_adds_a_checkpoint(tmp_path, capsys):
    from advlens.models import build_model, save_checkpoint
    from advlens.zoo import list_models

    path = save_checkpoint(build_model("small_cnn"), tmp_path / "mine")
    assert main(["import", str(path), "--name", "my digits"]) == 0
    assert "my_digits" in [e.name for e in list_models()]
    assert main(["predict", "--model", "my_digits", "--image", str(path)]) == 2  # not an image
    assert "could not be decoded" in capsys.readouterr().err
    (tmp_path / "junk.safetensors").write_bytes(b"junkjunkjunk")
    assert main(["import", str(tmp_path / "junk.safetensors")]) == 2
