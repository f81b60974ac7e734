"""The model zoo: architectures, normalisation, conv layers and checkpoints."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from advlens.models import CheckpointError, build_model, list_architectures, load_checkpoint, save_checkpoint
from advlens.models.checkpoint import load_checkpoint_upload


@pytest.mark.parametrize("arch,shape", [("small_cnn", (1, 28, 28)), ("preact_resnet18", (3, 32, 32))])
def test_architectures_forward(arch, shape):
    torch.manual_seed(0)
    m = build_model(arch)
    out = m(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    layers = m.conv_layers()
    assert layers and all(isinstance(m.get_submodule(n), torch.nn.Conv2d) for n in layers)
    assert m.default_cam_layer() in dict(m.named_modules())
    assert all(n in dict(m.named_modules()) for n in m.feature_layers())


def test_normalisation_happens_inside():
    m = build_model("preact_resnet18")
    x = torch.rand(1, 3, 32, 32)
    expected = m.net((x - torch.tensor(m.spec.mean).view(1, 3, 1, 1)) / torch.tensor(m.spec.std).view(1, 3, 1, 1))
    assert torch.allclose(m(x), expected)


def test_registry_lists_the_three_architectures():
    assert {"small_cnn", "preact_resnet18", "efficientnet_lite0"} <= set(list_architectures())
    with pytest.raises(KeyError, match="unknown architecture"):
        build_model("resnet9000")


def test_checkpoint_round_trip_is_bitwise_exact(tmp_path):
    torch.manual_seed(0)
    m = build_model("preact_resnet18", dataset="cifar10")
    m.train()
    m(torch.rand(4, 3, 32, 32))  # move the BN running statistics away from their init
    m.eval()
    path = save_checkpoint(m, tmp_path / "ck", recipe={"objective": "standard"}, metrics={"acc": 0.5})
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "preact_resnet18" and meta["recipe"] == {"objective": "standard"}
    assert meta["metrics"] == {"acc": 0.5} and "created_at" in meta
    a, b = m.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(m(x), loaded(x))
    # The weights file alone is enough: its header carries the metadata.
    (tmp_path / "ck.json").unlink()
    again, _ = load_checkpoint(path)
    assert torch.equal(again(x), m(x))


def test_checkpoint_metadata_fields(tmp_path):
    m = build_model("small_cnn")
    save_checkpoint(m, tmp_path / "m.safetensors")
    meta = json.loads((tmp_path / "m.json").read_text())
    for key in ("arch", "dataset", "class_names", "input_size", "mean", "std", "recipe", "metrics", "created_at"):
        assert key in meta


def test_malformed_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        load_checkpoint_upload(b"", None)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")

    m = build_model("small_cnn")
    path = save_checkpoint(m, tmp_path / "ok")
    (tmp_path / "ok.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    meta = json.loads(
        json.dumps(
            {
                **m.spec.to_dict(),
                "format": "advlens-checkpoint",
                "arch": "preact_resnet18",
                "input_size": [3, 32, 32],
                "mean": [0, 0, 0],
                "std": [1, 1, 1],
            }
        )
    )
    (tmp_path / "ok.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(path)
    (tmp_path / "ok.json").write_text(json.dumps({**meta, "arch": "alexnet"}))
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_checkpoint(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"weight": _RunsCode(str(marker))}, fh)
    (tmp_path / "evil.json").write_text(
        json.dumps({**build_model("small_cnn").spec.to_dict(), "format": "advlens-checkpoint"})
    )
    with pytest.raises(CheckpointError, match="not executed"):
        load_checkpoint(evil)
    assert not marker.exists()
    # The same bytes uploaded in place of a .safetensors file are refused before any parsing.
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint_upload(evil.read_bytes(), None, name="evil.safetensors")
    renamed = tmp_path / "evil2.safetensors"
    renamed.write_bytes(evil.read_bytes())
    with pytest.raises(CheckpointError):
        load_checkpoint(renamed)
    assert not marker.exists()


def test_non_finite_weights_are_refused(tmp_path):
    m = build_model("small_cnn")
    with torch.no_grad():
        m.net.fc2.bias[0] = float("nan")
    path = save_checkpoint(m, tmp_path / "nan")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_headers_that_start_like_a_pickle_still_load(tmp_path):
    """A valid file whose header length happens to begin with byte 0x80 is not a pickle."""
    from advlens.models.checkpoint import read_checkpoint_bytes

    m = build_model("small_cnn")
    for pad in range(0, 300, 7):
        path = save_checkpoint(m, tmp_path / f"p{pad}", extra_meta={"description": "x" * pad})
        blob = path.read_bytes()
        tensors, meta = read_checkpoint_bytes(blob, None, name=path.name)
        assert meta["description"] == "x" * pad
        if blob[0] == 0x80:
            break
    else:
        raise AssertionError("no header length starting with 0x80 was produced")
