"""Regression tests of the hardening issue: each defect a hostile or a new user found, fixed."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

from advlens.models import CheckpointError, build_model, load_checkpoint_upload
from advlens.models.checkpoint import META_KEY, build_metadata
from advlens.paths import user_models_dir

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_bytes(model=None, tensors=None, **meta_changes) -> bytes:
    model = model or build_model("small_cnn")
    meta = {**build_metadata(model), **meta_changes}
    tensors = tensors or {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata={META_KEY: json.dumps(meta)})


# 1. A checkpoint that imports fine and then breaks the app for everyone -----------------------
@pytest.mark.parametrize("field,value", [("metrics", [1, 2, 3]), ("metrics", "x"), ("recipe", [1]), ("recipe", "y")])
def test_metadata_fields_of_the_wrong_type_are_refused_on_import(field, value):
    from advlens.zoo import import_checkpoint

    with pytest.raises(CheckpointError, match=f"{field} must be a JSON object"):
        import_checkpoint(checkpoint_bytes(**{field: value}), None, "bad.safetensors")


def test_a_bad_file_already_in_the_models_folder_is_listed_as_unreadable_and_pages_work():
    from advlens.zoo import list_models

    folder = user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.safetensors").write_bytes(checkpoint_bytes())
    (folder / "broken.json").write_text(json.dumps({**build_metadata(build_model("small_cnn")), "metrics": [1, 2]}))
    names = [e.name for e in list_models()]
    assert "broken" not in names and "digits_small_cnn" in names
    (entry,) = [e for e in list_models(include_unreadable=True) if e.name == "broken"]
    assert "metrics must be a JSON object" in entry.problem
    home = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=240).run()
    assert not home.exception
    assert any("broken" in w.value and "metrics must be a JSON object" in w.value for w in home.warning)
    lab = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=240)
    lab.query_params["model"] = "digits_small_cnn"
    assert not lab.run().exception


# 2. Memory and time blow-up from a small upload ------------------------------------------------
@pytest.mark.parametrize(
    "changes,match",
    [
        ({"input_size": [1, 560, 560]}, "outside 1..512 pixels"),
        ({"class_names": [str(i) for i in range(20_000)]}, "MAX_CLASSES"),
        ({"input_size": [1, -28, -28]}, "outside 1..512"),
        ({"input_size": [1, 28.7, 28.2]}, "three whole numbers"),
        ({"class_names": "0123456789"}, "list of strings"),
        ({"std": [0.0]}, "std must be positive"),
        ({"std": [float("inf")]}, "finite numbers"),
        ({"mean": [float("nan")]}, "finite numbers"),
    ],
)
def test_metadata_is_checked_before_any_model_is_built(changes, match):
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint_upload(checkpoint_bytes(**changes), None, name="m.safetensors")


def test_tensor_shapes_are_checked_from_the_header_on_the_meta_device():
    """A small_cnn checkpoint whose metadata asks for 2x the classes: refused from the header alone."""
    model = build_model("small_cnn")
    blob = checkpoint_bytes(model, class_names=[str(i) for i in range(20)])
    with pytest.raises(CheckpointError, match=r"model.net.fc2.weight' has shape \(10, 1024\), expected \(20, 1024\)"):
        load_checkpoint_upload(blob, None, name="m.safetensors")


# 3 and 4. Tracebacks instead of messages; garbage accepted silently ---------------------------
@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int32, torch.bool, torch.float64])
def test_weights_in_other_dtypes_are_refused_not_converted(dtype):
    model = build_model("small_cnn")
    tensors = {f"model.{k}": (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="use float32 or float16"):
        load_checkpoint_upload(checkpoint_bytes(model, tensors), None, name="m.safetensors")


def test_float16_weights_load_and_are_cast_back():
    model = build_model("small_cnn")
    tensors = {f"model.{k}": v.half() for k, v in model.state_dict().items()}
    loaded, _ = load_checkpoint_upload(checkpoint_bytes(model, tensors), None, name="m.safetensors")
    assert loaded.net.fc1.weight.dtype == torch.float32


def test_deeply_nested_metadata_is_a_message(tmp_path):
    deep = '{"format": "advlens-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(CheckpointError, match="nests 100001 levels deep"):
        load_checkpoint_upload(checkpoint_bytes(), deep.encode(), name="m.safetensors")


@pytest.mark.parametrize(
    "config,match",
    [
        ({"step_milestones": 5}, "step_milestones must be a list of numbers"),
        ({"step_milestones": ["a"]}, "step_milestones must be a list of numbers"),
        ({"step_milestones": None}, "step_milestones must be a list of numbers"),
        ({"epochs": True}, "epochs must be of type int"),
        ({"val_size": 5000}, "val_size 5000 leaves no training images"),
        ({"epochs": "x", "lr": None, "flip": 1}, "epochs must be .*\n- lr must be .*\n- flip must be"),  # all at once
    ],
)
def test_train_config_problems_are_reported_by_the_cli(tmp_path, capsys, config, match):
    from advlens.cli import main

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err


def test_a_deeply_nested_config_file_is_a_message(tmp_path, capsys):
    from advlens.cli import main

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["train", "--config", str(path)]) == 2
    assert "nests 100000 levels deep" in capsys.readouterr().err


# 6. A transparent PNG became a black image -----------------------------------------------------
def test_a_transparent_drawing_is_composited_onto_white_and_the_user_is_told():
    from advlens.data import load_upload

    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(im).line([(15, 10), (50, 10), (30, 55)], fill=(0, 0, 0, 255), width=6)  # a black "7"
    buf = io.BytesIO()
    im.save(buf, "PNG")
    notes: list[str] = []
    x = load_upload(buf.getvalue(), (1, 28, 28), name="seven.png", invert_if_light=True, notes=notes)
    assert 0.05 < float(x.mean()) < 0.4 and float(x.max()) > 0.9  # a light stroke on dark, not all black
    assert any("Transparent pixels" in n and "white" in n for n in notes)
    rgb = load_upload(buf.getvalue(), (3, 32, 32), name="seven.png")
    assert float(rgb.mean()) > 0.6  # on white, as drawn


# 7. The training form started runs by accident --------------------------------------------------
def test_the_same_config_twice_starts_one_run(monkeypatch):
    from advlens.jobs.store import RunStore
    from advlens.training import jobs
    from advlens.training.config import TrainConfig

    monkeypatch.setattr(jobs, "spawn_worker", lambda run_id, command, store=None: 0)  # no worker process
    store = RunStore()
    cfg = dict(objective="standard", epochs=1, max_steps=2)
    first = jobs.submit(TrainConfig.from_dict(cfg), store)
    with pytest.raises(jobs.DuplicateRun) as dup:
        jobs.submit(TrainConfig.from_dict(cfg), store)
    assert dup.value.run.id == first.id and len(store.list_runs()) == 1
    jobs.submit(TrainConfig.from_dict({**cfg, "seed": 1}), store)  # a different config is a new run
    assert len(store.list_runs()) == 2


def test_enter_does_not_submit_the_training_form():
    src = (ROOT / "dashboard/training.py").read_text()
    assert 'st.form("tr_form", enter_to_submit=False)' in src


# 8. Silent substitutions ------------------------------------------------------------------------
def test_an_unknown_model_in_the_link_is_named_and_a_run_id_is_accepted():
    from dashboard.model_picker import resolve_model_name

    assert resolve_model_name("a0b5e4", ["digits_small_cnn", "run-a0b5e4-pgd_at"]) == ("run-a0b5e4-pgd_at", "")
    assert resolve_model_name("a0b5e4+jpeg75", ["run-a0b5e4-pgd_at"]) == ("run-a0b5e4-pgd_at", "jpeg75")
    assert resolve_model_name("nope", ["digits_small_cnn"]) == (None, "")
    assert resolve_model_name("digits_small_cnn+nope7", ["digits_small_cnn"]) == (None, "")
    lab = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=240)
    lab.query_params["model"] = "no_such_model"
    lab.query_params["attack"] = "fgsm"
    lab.run()
    assert not lab.exception
    assert any("'no_such_model' was not found" in w.value for w in lab.warning)


# 9. Slow attacks ---------------------------------------------------------------------------------
def test_the_eta_comes_from_the_steps_so_far():
    from dashboard.attack_lab import eta_text

    assert eta_text(10, 100, 5.0) == "step 10/100 · 5 s so far · about 45 s left"
    assert eta_text(1, 500, 2.0).endswith("about 16.6 min left")


def test_the_cpu_preset_button_sets_the_slow_attack_settings():
    lab = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=240)
    lab.query_params.update(model="digits_small_cnn", attack="cw", auto="0")
    lab.run()
    lab.button(key="atk_preset_cw").click().run()
    assert not lab.exception
    assert lab.number_input(key="atk_cw_steps").value == 50 and lab.number_input(key="atk_cw_binary_steps").value == 2


@pytest.mark.slow
def test_the_cpu_presets_still_flip_a_sample_photo(lite0):
    from advlens.attacks import ATTACKS, run_attack
    from advlens.data import SAMPLE_PHOTOS, fit_image, sample_photo

    x = fit_image(sample_photo("chelsea"), lite0.input_size).unsqueeze(0)
    for name in ("cw", "deepfool"):
        torch.manual_seed(0)
        res = run_attack(lite0, x, SAMPLE_PHOTOS["chelsea"], name, **ATTACKS[name].CPU_PRESET)
        assert bool(res.success[0]), name


# 10. Smaller UI issues ---------------------------------------------------------------------------
def test_eps_zero_does_no_work_and_shows_a_plain_grey_perturbation(digits_model, digits_test):
    from advlens.attacks import run_attack
    from advlens.attacks.display import perturbation_rgb

    x, y = digits_test.batch(range(2))
    calls = []
    res = run_attack(digits_model, x, y, "pgd", eps=0.0, steps=50, progress=lambda s, t: calls.append(s))
    assert torch.equal(res.x_adv, res.x) and calls == [] and not bool(res.success.any())
    pic, k = perturbation_rgb(res.perturbation(0) + 1e-7)  # float noise is no perturbation
    assert k == 1 and np.unique(pic).tolist() == [128]


def test_the_source_line_names_arxiv_once_and_readme_matches_the_shipped_model():
    train = AppTest.from_file(str(ROOT / "dashboard/training.py"), default_timeout=240).run()
    source = next(c.value for c in train.caption if c.value.startswith("Source:"))
    assert source.count("arXiv 1706.06083") == 1
    meta = json.loads((ROOT / "assets/models/digits_small_cnn.json").read_text())
    shown = f"{meta['metrics']['test_accuracy'] * 100:.3g}% on the {meta['metrics']['test_images']} held-out digits"
    assert shown in (ROOT / "README.md").read_text()


def test_the_highlighted_bar_is_explained_in_the_chart():
    from advlens.predict import TopK
    from dashboard.charts import topk_bars

    fig = topk_bars(TopK([0, 1], ["cat", "dog"], [0.6, 0.4]), "Top-5", highlight="dog", highlight_means="the target")
    assert "orange: the target" in fig.layout.title.text


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
