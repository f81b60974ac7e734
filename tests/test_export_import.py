"""torch.export programs (.pt2) as zoo models: a round trip and hostile archives (issue 25).

The network is defined here only: advlens never sees its class. It is exported once per module
(the slow part, about a second) and every hostile file is a rewrite of that archive's zip.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest
import torch
from torch import nn

from advlens.attacks import run_attack
from advlens.attribution.cam import gradcam
from advlens.cli import main
from advlens.models import CheckpointError, Classifier, ModelSpec
from advlens.models.exported import MAX_TENSOR_ELEMENTS, read_program
from advlens.zoo import get_entry, import_checkpoint, import_program, list_models, load_model

NAMES = ["cat", "dog", "owl"]


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    net = TinyNet().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.features[1].running_mean.uniform_(-0.2, 0.2)
        net.features[1].running_var.uniform_(0.5, 1.5)
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(net, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return net, buf.getvalue()


def _rewrite(blob: bytes, edit=None, extra: dict | None = None) -> bytes:
    """The archive with ``edit(name, data) -> (name, data) | None`` applied to each member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(out, "w") as dst:
        root = src.namelist()[0].split("/")[0]
        for info in src.infolist():
            item = (info.filename, src.read(info))
            item = edit(*item) if edit else item
            if item is not None:
                dst.writestr(item[0], item[1])
        for name, data in (extra or {}).items():
            dst.writestr(name.replace("ROOT", root), data)
    return out.getvalue()


def _edit_json(member: str, change):
    def edit(name, data):
        if name.endswith(member):
            j = json.loads(data)
            change(j)
            data = json.dumps(j).encode()
        return name, data

    return edit


class _Marker:
    """A pickle that creates a file when unpickled: proof that nothing was unpickled if it is absent."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_round_trip_logits_gradients_pgd_gradcam(exported, tmp_path):
    net, blob = exported
    meta = json.dumps({"class_names": NAMES, "dataset": "toy", "cam_layer": "features.2"}).encode()
    entry = import_checkpoint(blob, meta, "tiny.pt2")
    assert (entry.name, entry.arch, entry.source, entry.input_size) == ("tiny", "torch_export", "imported", (1, 8, 8))
    assert "tiny" in [e.name for e in list_models()]
    model = load_model("tiny", device="cpu")
    assert model.class_names == tuple(NAMES)
    # the module hierarchy came back with its names
    assert {"net.features.0", "net.features.3"} <= set(model.conv_layers())
    assert model.default_cam_layer() == "net.features.2"  # as the JSON said, kept in the zoo's metadata
    original = Classifier(net, ModelSpec("tiny", (1, 8, 8), tuple(NAMES), (0.0,), (1.0,))).eval()

    x = torch.rand(5, 1, 8, 8)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    la, lb = model(xa), original(xb)
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    nn.functional.cross_entropy(la, torch.tensor([0, 1, 2, 0, 1])).backward()
    nn.functional.cross_entropy(lb, torch.tensor([0, 1, 2, 0, 1])).backward()
    assert xa.grad.abs().sum() > 0
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-7)

    y = original(x).argmax(1)
    torch.manual_seed(1)
    res = run_attack(model, x, y, "pgd", eps=0.1, steps=10)
    assert float(res.linf.max()) <= 0.1 + 1e-6
    clean_margin = original(x).gather(1, y[:, None]).squeeze(1) - original(x).logsumexp(1)
    adv = res.x_adv
    adv_margin = original(adv).gather(1, y[:, None]).squeeze(1) - original(adv).logsumexp(1)
    assert (adv_margin < clean_margin).all()  # the gradients that moved it are the original's
    torch.testing.assert_close(model(adv), original(adv), rtol=1e-5, atol=1e-6)

    for layer in ("net.features.3", "net.features.0"):
        cam_a, cam_b = gradcam(model, x[:2], y[:2], layer=layer), gradcam(original, x[:2], y[:2], layer=layer)
        assert cam_a.shape == (2, 8, 8)
        torch.testing.assert_close(cam_a, cam_b, rtol=1e-4, atol=1e-6)
    assert not any(m._forward_hooks for m in model.modules())  # Grad-CAM left no hook behind


def test_feature_maps_and_denoising_view_at_a_named_layer(exported):
    from advlens.attribution.features import layer_features
    from defenses.denoise_view import denoise_view

    net, blob = exported
    model, _ = read_program(blob, {}, "tiny.pt2")
    x = torch.rand(2, 1, 8, 8)
    feats = layer_features(model, x, ["net.features.2"])
    torch.testing.assert_close(feats["net.features.2"], net.features[:3](x), rtol=1e-5, atol=1e-6)
    view = denoise_view(model, x[:1], (x[:1] + 0.05).clamp(0, 1), "net.features.3", "mean")
    assert view is not None


def test_cli_import_with_flags_then_refusals(exported, tmp_path, capsys):
    _, blob = exported
    path = tmp_path / "mine.pt2"
    path.write_bytes(blob)
    assert main(["import", str(path), "--classes", "a,b,c", "--mean", "0.5", "--std", "0.25", "--dataset", "toy"]) == 0
    model = load_model("mine", device="cpu")
    assert model.class_names == ("a", "b", "c") and float(model.std) == 0.25
    assert get_entry("mine").path.suffix == ".pt2"
    capsys.readouterr()
    assert main(["import", str(path), "--name", "other", "--input-size", "3x8x8"]) == 2
    assert main(["import", str(path), "--name", "other", "--classes", "a,b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: other.pt2 takes 1x8x8 images, but the input size given is 3x8x8.",
        "error: other.pt2 returns 3 logits, but 2 class names were given.",
    ]
    assert "other" not in [e.name for e in list_models()]


def _refused(blob: bytes, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        import_program(blob, None, "evil.pt2")
    message = str(info.value)
    assert "\n" not in message and "evil.pt2" in message
    for w in words:
        assert w in message, message
    assert "evil" not in [e.name for e in list_models(include_unreadable=True)]  # nothing left in the zoo
    return message


def test_pickled_weight_is_refused_and_never_unpickled(exported, tmp_path):
    _, blob = exported
    marker = tmp_path / "pwned"

    def change(cfg):
        entry = next(iter(cfg["config"].values()))
        entry["use_pickle"] = True

    def edit(name, data):
        name, data = _edit_json("model_weights_config.json", change)(name, data)
        if name.endswith("/weight_0"):
            data = pickle.dumps(_Marker(marker))
        return name, data

    _refused(_rewrite(blob, edit), "pickle")
    _refused(_rewrite(blob, extra={"ROOT/data/payload.pkl": pickle.dumps(_Marker(marker))}), "payload.pkl")
    assert not marker.exists()


def test_sample_inputs_pickle_and_guard_code_are_never_run(exported, tmp_path):
    """torch.export.load would unpickle sample_inputs and exec guards_code; advlens does neither."""
    _, blob = exported
    marker, marker2 = tmp_path / "pwned", tmp_path / "pwned2"

    def edit(name, data):
        if name.endswith("sample_inputs/model.pt"):
            data = pickle.dumps(_Marker(marker))
        return _edit_json("models/model.json", lambda j: j.update(guards_code=[f"open({str(marker2)!r}, 'w')"]))(
            name, data
        )

    model, _ = read_program(_rewrite(blob, edit), {}, "tiny.pt2")
    model(torch.rand(2, 1, 8, 8))
    assert not marker.exists() and not marker2.exists()


@pytest.mark.parametrize(
    "target", ["torch.load", "torch.ops.mylib.evil.default", "torch.ops.aten.from_file.default", "builtins.eval"]
)
def test_unknown_operators_are_refused(exported, target):
    _, blob = exported

    def change(j):
        j["graph_module"]["graph"]["nodes"][0]["target"] = target

    _refused(_rewrite(blob, _edit_json("models/model.json", change)), "operator", target)


def test_code_in_a_symbolic_size_is_refused(exported):
    _, blob = exported
    evil = "__import__('os').system('true')"

    def change(j):
        for tv in j["graph_module"]["graph"]["tensor_values"].values():
            for d in tv["sizes"]:
                if "as_expr" in d:
                    d["as_expr"]["expr_str"] = evil

    _refused(_rewrite(blob, _edit_json("models/model.json", change)), "symbolic size")


def test_enormous_declared_tensor_is_refused_before_allocation(exported):
    _, blob = exported
    side = 1 << 20  # 2**40 elements: 4 TiB of float32

    def change(cfg):
        meta = cfg["config"]["features.0.weight"]["tensor_meta"]
        meta["sizes"] = [{"as_int": side}, {"as_int": side}]
        meta["strides"] = [{"as_int": side}, {"as_int": 1}]

    message = _refused(_rewrite(blob, _edit_json("model_weights_config.json", change)), "features.0.weight")
    assert f"{MAX_TENSOR_ELEMENTS:,}" in message

    def lie(cfg):  # a plausible shape, but more elements than the file holds
        meta = cfg["config"]["head.weight"]["tensor_meta"]
        meta["sizes"], meta["strides"] = [{"as_int": 3000}, {"as_int": 6}], [{"as_int": 6}, {"as_int": 1}]

    _refused(_rewrite(blob, _edit_json("model_weights_config.json", lie)), "head.weight", "bytes")


def test_enormous_intermediate_result_is_refused(exported):
    """A graph whose recorded shapes look small but whose operation makes a huge tensor."""
    _, blob = exported

    def change(j):
        for node in j["graph_module"]["graph"]["nodes"]:
            if node["target"] == "torch.ops.aten.mean.dim":  # mean over (2, 3) -> a repeat of 4096 x 4096
                node["target"] = "torch.ops.aten.repeat.default"
                node["inputs"] = [
                    node["inputs"][0],
                    {"name": "repeats", "arg": {"as_ints": [1, 1, 4096, 4096]}, "kind": 1},
                ]

    _refused(_rewrite(blob, _edit_json("models/model.json", change)), "elements")


def test_truncated_or_foreign_files_are_refused(exported):
    _, blob = exported
    _refused(blob[: len(blob) // 2], "truncated")
    _refused(b"PK\x03\x04" + b"\0" * 50, "truncated")
    _refused(b"\x80\x04K\x01.", "not a torch.export archive")
    plain = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, plain)  # a torch.save zip, not a program
    _refused(plain.getvalue(), "not", "torch.export")


def test_path_traversal_member_names_are_refused(exported):
    _, blob = exported
    _refused(_rewrite(blob, extra={"ROOT/../../evil.txt": b"x"}), "climbs out")
    _refused(_rewrite(blob, extra={"/etc/evil": b"x"}), "absolute")
    _refused(_rewrite(blob, lambda n, d: (n.replace("/", "\\", 1) if "weight_3" in n else n, d)), "Windows")


def _import_box():
    from dashboard.checkpoint_import import checkpoint_loader

    checkpoint_loader()


def test_home_import_box_takes_a_program_from_a_path(exported, tmp_path):
    from streamlit.testing.v1 import AppTest

    _, blob = exported
    (tmp_path / "boxed.pt2").write_bytes(blob)
    (tmp_path / "boxed.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    at = AppTest.from_function(_import_box, default_timeout=60).run()
    at.text_input(key="ckpt_path").input(str(tmp_path / "boxed.pt2")).run()
    at.button(key="ckpt_import_path").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Not imported: boxed.pt2 returns 3 logits, but 2 class names were given."]
    (tmp_path / "boxed.json").write_text(json.dumps({"class_names": NAMES, "dataset": "toy"}))
    at.button(key="ckpt_import_path").click().run()
    assert not at.exception and any("boxed" in s.value for s in at.success), [s.value for s in at.success]
    assert get_entry("boxed").arch == "torch_export"


def test_a_program_exported_at_batch_1_gives_one_gradcam_map_per_image(tmp_path):
    """The plain ``torch.export.export(net, (x,))`` fixes the batch at 1; the model runs larger inputs in
    slices, and Grad-CAM (a hook on one layer) used to keep the last slice's map only (issue 25)."""
    from advlens.attribution import compute_map

    torch.manual_seed(0)
    net = TinyNet().eval()
    buf = io.BytesIO()
    torch.export.save(torch.export.export(net, (torch.rand(1, 1, 8, 8),)), buf)
    meta = json.dumps({"class_names": NAMES, "cam_layer": "features.4"}).encode()
    import_checkpoint(buf.getvalue(), meta, "fixed.pt2")
    model = load_model("fixed", device="cpu")
    assert model.program_batch == 1
    original = Classifier(net, ModelSpec("fixed", (1, 8, 8), tuple(NAMES), (0.0,), (1.0,))).eval()
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 2, 1])
    for method in ("gradcam", "gradcam++", "layercam"):
        maps = compute_map(model, x, method, "net.features.4", y)
        assert maps.shape == (3, 8, 8)
        torch.testing.assert_close(maps, compute_map(original, x, method, "net.features.4", y), rtol=1e-4, atol=1e-6)
    one = compute_map(model, x, "gradcam", "net.features.4", 2)  # one class for every image
    torch.testing.assert_close(one[1], compute_map(model, x[1:2], "gradcam", "net.features.4", 2)[0])


def test_a_program_exported_at_batch_1_gives_one_feature_row_per_image(tmp_path):
    """The feature views hook a layer too: on a batch-1 program, every image gets its own features, not
    only the last slice's."""
    from advlens.attribution.features import clean_and_adv_features, layer_features

    torch.manual_seed(0)
    net = TinyNet().eval()
    buf = io.BytesIO()
    torch.export.save(torch.export.export(net, (torch.rand(1, 1, 8, 8),)), buf)
    import_checkpoint(buf.getvalue(), json.dumps({"class_names": NAMES}).encode(), "fixed_feats.pt2")
    model = load_model("fixed_feats", device="cpu")
    assert model.program_batch == 1
    original = Classifier(net, ModelSpec("fixed_feats", (1, 8, 8), tuple(NAMES), (0.0,), (1.0,))).eval()
    x = torch.rand(3, 1, 8, 8)
    layers = ["net.features.1", "net.features.4"]
    feats, expected = layer_features(model, x, layers), layer_features(original, x, layers)
    for name in layers:
        assert feats[name].shape[0] == 3
        torch.testing.assert_close(feats[name], expected[name], rtol=1e-4, atol=1e-6)
    clean, adv = clean_and_adv_features(model, x, x.flip(0), ["net.features.4"])
    torch.testing.assert_close(adv["net.features.4"], expected["net.features.4"].flip(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(clean["net.features.4"], expected["net.features.4"], rtol=1e-4, atol=1e-6)
