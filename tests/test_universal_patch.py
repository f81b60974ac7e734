"""Universal perturbations and adversarial patches: budgets, placement geometry, saving, the job kind,
the CLI and the Attack Lab's section. Small on purpose (tiny images, a few steps); the acceptance figures
are in bench/universal_patch.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from advlens.attacks.patch import AdversarialPatch, apply_patch, fixed_placement, patch_side, sample_placements
from advlens.attacks.universal import UniversalPerturbation, add_universal
from advlens.cli import main
from advlens.perturbations import jobs, saved
from advlens.perturbations.measure import fooling_rate, perturb

ROOT = Path(__file__).resolve().parents[1]


def test_universal_perturbation_keeps_its_budget_and_beats_random_noise(digits_model, digits_test):
    from advlens.data import load_dataset

    train = load_dataset("digits", "train")
    x, y = train.batch(torch.arange(32))
    xt, yt = digits_test.batch(torch.arange(96))
    torch.manual_seed(0)
    attack = UniversalPerturbation(digits_model, eps=0.2, steps=6, step_size=0.05, batch_size=32)
    x_adv = attack(x, y)
    delta = attack.delta
    assert delta.shape == x.shape[1:]
    assert float(delta.abs().max()) <= 0.2 + 1e-6
    assert float((x_adv - x).abs().max()) <= 0.2 + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    # every image got the same perturbation, up to the [0, 1] box
    assert torch.allclose(x_adv, add_universal(x, delta))
    meta = {"target": None}
    ours = fooling_rate(digits_model, "universal", delta, meta, xt, yt)
    g = torch.Generator().manual_seed(0)
    noise = 0.2 * torch.sign(torch.randn(delta.shape, generator=g))
    random = fooling_rate(digits_model, "universal", noise, meta, xt, yt)
    assert ours["n"] == random["n"] == 96  # the shipped model gets every test digit right
    assert ours["rate"] > random["rate"] + 0.2, (ours["rate"], random["rate"])
    lo, hi = ours["interval_95"]
    assert lo <= ours["rate"] <= hi


def test_patch_side_is_the_largest_square_within_the_area():
    assert patch_side(0.1, 32, 32) == 10  # 100 of 1024 pixels, 9.8%
    assert patch_side(0.15, 8, 8) == 3
    assert patch_side(0.1, 224, 224) == 70


def test_patch_placement_geometry():
    x = torch.rand(5, 3, 8, 8)
    patch = torch.rand(3, 3, 3)
    # no rotation, scale 1: the patch's pixels exactly, at the given place, nothing else touched
    out = apply_patch(x, patch, fixed_placement(5, 2, 4))
    assert torch.allclose(out[:, :, 2:5, 4:7], patch.expand(5, -1, -1, -1), atol=1e-6)
    mask = torch.ones(8, 8, dtype=torch.bool)
    mask[2:5, 4:7] = False
    assert torch.equal(out[:, :, mask], x[:, :, mask])
    # a quarter turn is the patch rotated (the direction is the image's: counter-clockwise on screen)
    turned = apply_patch(x[:1], patch, fixed_placement(1, 0, 0, 1.0, 90.0))[0, :, :3, :3]
    assert any(torch.allclose(turned, torch.rot90(patch, k, (1, 2)), atol=1e-5) for k in (1, 3))
    # random placements: always inside the image, never more than side^2 pixels, values in [0, 1]
    g = torch.Generator().manual_seed(0)
    pl = sample_placements(400, 3, (8, 8), 0.5, 180.0, g)
    assert int(pl.rows.min()) >= 0 and int(pl.rows.max()) <= 5 and int(pl.cols.max()) <= 5
    assert float(pl.scale.min()) >= 0.5 and float(pl.angle.abs().max()) <= 180
    white = apply_patch(torch.zeros(400, 3, 8, 8), torch.ones(3, 3, 3), pl)
    covered = (white > 0).any(1).sum((1, 2))
    assert int(covered.max()) <= 9 and int(covered.min()) >= 1
    for i in range(0, 400, 37):  # inside its own box
        r, c = int(pl.rows[i]), int(pl.cols[i])
        outside = white[i].clone()
        outside[:, r : r + 3, c : c + 3] = 0
        assert float(outside.abs().max()) == 0
    small = apply_patch(torch.zeros(1, 3, 8, 8), torch.ones(3, 3, 3), fixed_placement(1, 0, 0, 0.5, 0.0))
    assert 0 < float(small[0, 0].sum()) <= 4.5  # half the side: about a quarter of the area
    mixed = apply_patch(torch.rand(400, 3, 8, 8), torch.rand(3, 3, 3), pl)
    assert float(mixed.min()) >= 0 and float(mixed.max()) <= 1


class TinyNet(nn.Module):
    """A fixed random convolution with a global max: a patch anywhere can raise a class's score. The base's
    checks need ``input_size`` and ``num_classes``."""

    input_size = (3, 8, 8)
    num_classes = 4
    class_names = ("a", "b", "c", "d")

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).amax((2, 3))


def test_a_trained_patch_beats_a_random_one_and_stays_in_its_box():
    model = TinyNet().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8, generator=g)
    y = model(x).argmax(1)
    keep = y != 0
    x, y = x[keep], y[keep]
    torch.manual_seed(0)
    attack = AdversarialPatch(model, area=0.15, steps=40, batch_size=32, lr=0.1, min_scale=0.8, max_rotation=30)
    x_adv = attack(x, y, torch.zeros_like(y))
    assert attack.patch.shape == (3, 3, 3)
    assert float(attack.patch.min()) >= 0 and float(attack.patch.max()) <= 1
    changed = (x_adv != x).any(1).sum((1, 2))
    assert int(changed.max()) <= 9  # at most 9 of 64 pixels (14%) per image
    meta = {"target": 0, "params": {"min_scale": 0.8, "max_rotation": 30}}
    ours = fooling_rate(model, "patch", attack.patch, meta, x, y)
    grey = fooling_rate(model, "patch", torch.full((3, 3, 3), 0.5), meta, x, y)
    assert ours["rate"] >= grey["rate"] + 0.1, (ours, grey)  # about 25% against 0% (a 3x3 patch of 8x8)
    assert all(p.grad is None for p in model.parameters())  # nothing left on the model


def test_saved_perturbations_round_trip_and_refuse_bad_files():
    delta = torch.rand(1, 28, 28) * 0.2 - 0.1
    meta = {"model": "digits_small_cnn", "params": {"eps": 0.1, "steps": 1}, "target": None}
    saved.save("my-uap", "universal", delta, meta)
    item = saved.load("my-uap")
    assert item.kind == "universal" and torch.allclose(item.tensor, delta) and not item.shipped
    assert "my-uap" in [i.name for i in saved.list_saved("digits_small_cnn")]
    with pytest.raises(saved.PerturbationError, match="exists"):
        saved.save("my-uap", "universal", delta, meta)
    for bad in ("../x", "", ".hidden", "a" * 65, "x.json"):
        with pytest.raises(saved.PerturbationError, match="not a usable name"):
            saved.load(bad)
    folder = saved.user_dir()
    (folder / "broken.json").write_text(json.dumps({"kind": "universal", "shape": [1, 28, 28]}))
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(saved.PerturbationError, match="not a readable safetensors"):
        saved.load("broken")
    (folder / "wrong.json").write_text(json.dumps({"kind": "universal", "shape": [3, 28, 28]}))
    (folder / "wrong.safetensors").write_bytes((folder / "my-uap.safetensors").read_bytes())
    with pytest.raises(saved.PerturbationError, match="does not match"):
        saved.load("wrong")
    assert {"broken", "wrong"}.isdisjoint(i.name for i in saved.list_saved())  # skipped, not raised
    with pytest.raises(saved.PerturbationError, match="no saved perturbation"):
        saved.load("nothing-here")


def test_a_perturbation_job_runs_in_the_run_store_and_saves_its_result(digits_model):
    from advlens.jobs.store import RunStore

    spec = jobs.PerturbationSpec(
        method="universal",
        model="digits_small_cnn",
        dataset="digits",
        name="job-uap",
        n=64,
        heldout_split="test",
        heldout_n=40,
        params={"eps": 0.2, "steps": 2, "batch_size": 64},
    )
    jobs.check_spec(spec)
    store = RunStore()
    rec = store.create_run(spec.row(), "cpu", kind=jobs.KIND, meta=jobs.PerturbationJob().describe(spec.row()))
    assert rec.meta["method"] == "universal" and rec.meta["model"] == "digits_small_cnn" and rec.status == "queued"
    rec = jobs.execute(rec.id, store, echo=False)
    assert rec.status == "done", rec.message
    assert rec.metrics["heldout_n"] == 40 and 0 <= rec.metrics["heldout_rate"] <= 1
    item = saved.load("job-uap")
    held = item.meta["heldout"]
    assert held["subset"]["rule"] == "first" and held["subset"]["n"] == 40 and held["n"] == 40
    assert item.meta["train"]["n"] == 64 and float(item.tensor.abs().max()) <= 0.2 + 1e-6
    assert [r.id for r in jobs.list_jobs(store)] == [rec.id]
    # the same name again is refused before anything is queued; a held-out window overlapping the
    # training images is refused when the job runs
    with pytest.raises(jobs.PerturbationConfigError, match="exists"):
        jobs.check_spec(spec)
    clash = jobs.PerturbationSpec(**{**spec.to_dict(), "name": "clash", "heldout_split": None, "heldout_offset": 10})
    with pytest.raises(jobs.PerturbationConfigError, match="overlap"):
        jobs.run_spec(clash, log=lambda s: None)


def test_cli_bad_settings_are_one_line(capsys):
    assert main(["universal", "--model", "digits_small_cnn", "--dataset", "digits", "--eps", "2"]) == 2
    assert main(["patch", "--model", "digits_small_cnn", "--dataset", "digits", "--name", "../x"]) == 2
    assert main(["attack", "--universal", "nothing-here", "--dataset", "digits", "--index", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") >= 2 and "Traceback" not in err
    assert "not a usable name" in err and "no saved perturbation" in err


def test_cli_applies_a_saved_perturbation_to_an_image(capsys):
    torch.manual_seed(0)
    delta = 0.2 * torch.sign(torch.randn(1, 28, 28))
    saved.save("cli-uap", "universal", delta, {"model": "digits_small_cnn", "params": {"eps": 0.2}, "target": None})
    assert (
        main(["attack", "--model", "digits_small_cnn", "--dataset", "digits", "--index", "0", "--universal", "cli-uap"])
        == 0
    )
    out = capsys.readouterr().out
    assert "perturbed" in out and "fooled:" in out
    assert main(["perturbations"]) == 0
    assert "cli-uap: universal for digits_small_cnn" in capsys.readouterr().out
    x = torch.zeros(1, 1, 28, 28)
    assert float((perturb("universal", delta, {}, x) - x).abs().max()) <= 0.2 + 1e-6


def test_the_attack_lab_applies_a_saved_patch():
    from streamlit.testing.v1 import AppTest

    torch.manual_seed(0)
    patch = torch.rand(1, 8, 8)
    meta = {"model": "digits_small_cnn", "params": {"steps": 1, "min_scale": 0.8, "max_rotation": 20}, "target": 3}
    meta.update({"target_name": "3", "area_covered": 64 / 784})
    meta["heldout"] = {"rate": 0.5, "n": 10, "interval_95": [0.19, 0.81], "protocol": "a test protocol"}
    saved.save("lab-patch", "patch", patch, meta)
    at = AppTest.from_file(str(ROOT / "dashboard" / "attack_lab.py"), default_timeout=120)
    at.query_params.update({"model": "digits_small_cnn", "auto": "0", "pert": "lab-patch", "pert_row": "2"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="pert").value == "lab-patch"
    assert at.slider(key="pert_row").value == 2
    text = " ".join(str(m.value) for m in at.markdown)
    assert "targeted success on held-out images: 50.0%" in text and "n = 10" in text
    labels = {m.label: m.value for m in at.metric}
    assert labels["Target reached"] in ("yes", "no") and "Prediction with it" in labels


@pytest.mark.parametrize("method", ["patch", "universal"])
def test_a_stopped_perturbation_job_continues_from_its_saved_step(method, tmp_path):
    """A job stopped half-way continues from its last saved state and ends where an uninterrupted run
    ends; a state of another spec, or a torn one, is ignored."""
    from advlens.perturbations import state

    params = (
        {"area": 0.1, "steps": 12, "batch_size": 16, "lr": 0.1}
        if method == "patch"
        else {"eps": 0.2, "steps": 6, "batch_size": 32}
    )
    spec = jobs.PerturbationSpec(
        method=method, model="digits_small_cnn", dataset="digits", name=f"whole-{method}", n=48,
        heldout_split="test", heldout_n=20, params=params, target=3 if method == "patch" else None,
    )  # fmt: skip
    whole = jobs.run_spec(spec, log=lambda s: None, state_dir=tmp_path / "whole")
    assert not (tmp_path / "whole" / state.FILE).exists()  # a finished job leaves no state behind

    half = jobs.PerturbationSpec(**{**spec.to_dict(), "name": f"half-{method}"})
    folder = tmp_path / "half"
    calls = {"n": 0}

    def stop_half_way():
        calls["n"] += 1
        return calls["n"] > params["steps"] // 2

    jobs.train_perturbation(half, load_digits_model(), *training_xy(half), None, stop_half_way, folder, print)
    saved_state = state.read_state(folder, state_key(half), log=lambda s: None)
    assert saved_state is not None and saved_state["step"] == params["steps"] // 2 + 1  # saved as it stopped

    logged = []
    resumed = jobs.run_spec(half, log=logged.append, state_dir=folder)
    assert any("continuing from step" in line for line in logged)
    assert len(resumed["history"]) == len(whole["history"]) == params["steps"]
    a, b = saved.load(f"whole-{method}").tensor, saved.load(f"half-{method}").tensor
    assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    assert resumed["heldout"]["rate"] == pytest.approx(whole["heldout"]["rate"], abs=0.051)  # one image of 20

    # another spec does not pick up this state; a torn file is ignored with a line in the log
    state.write_state(folder, state_key(half), saved_state)
    other = jobs.PerturbationSpec(**{**half.to_dict(), "seed": 1})
    assert state.read_state(folder, state_key(other), log=logged.append) is None
    (folder / state.FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{torn")
    assert state.read_state(folder, state_key(half), log=logged.append) is None
    assert "another version" in logged[-2] and "unreadable" in logged[-1]


def load_digits_model():
    from advlens.zoo import load_model

    return load_model("digits_small_cnn", "cpu")


def training_xy(spec):
    x, y, _ = jobs.training_images(spec, lambda s: None)
    return x, y


def state_key(spec):
    return {k: v for k, v in spec.to_dict().items() if k not in ("device", "replace")}
