"""Hostile inputs through the functions the UI and the CLI use: images, checkpoints with their
metadata, and training configurations, generated here (well over 300 in all).

Each input must end in a clear error (DataError, CheckpointError, ConfigError) or a correct
acceptance (the model loads and predicts; the config validates), with no other exception, no
input taking over 10 s, no more than 1 GB of extra memory, no code executed, and no page broken
afterwards: the zoo listing, the CLI's model list and the Home page still work.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save as st_save

from advlens.data import DataError, load_upload
from advlens.models import CheckpointError, build_model, load_checkpoint_upload
from advlens.models.checkpoint import META_KEY, build_metadata
from advlens.training.config import ConfigError, TrainConfig, validate

ROOT = Path(__file__).resolve().parents[1]
MARKER = Path("/tmp/advlens_fuzz_code_ran")
CLEAR = (DataError, CheckpointError, ConfigError)


class Payload:
    """Unpickling this would create MARKER: proof that code ran."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


# ------------------------------------------------------------------------------------- images
def _png(mode: str, size=(32, 32), fmt="PNG", **save) -> bytes:
    rng = np.random.default_rng(len(mode) + size[0])
    if mode in ("RGB", "RGBA", "CMYK"):
        arr = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
        im = Image.fromarray(arr, "RGB" if mode == "RGB" else "RGBA").convert(mode)
    else:
        im = Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L").convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def _bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header that claims w x h pixels (Pillow refuses it before decoding)."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def image_inputs() -> list[tuple[str, bytes, bool]]:
    """(label, bytes, must_be_accepted)."""
    good = [(f"png-{m}", _png(m), True) for m in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")]
    good += [("jpeg-rgb", _png("RGB", fmt="JPEG"), True), ("jpeg-cmyk", _png("CMYK", fmt="JPEG"), True)]
    good += [("webp", _png("RGB", fmt="WEBP"), True), ("bmp", _png("RGB", fmt="BMP"), True)]
    good += [
        ("1x1", _png("RGB", (1, 1)), True),
        ("4000x1", _png("L", (4000, 1)), True),
        ("1x3000", _png("L", (1, 3000)), True),
    ]
    transparent = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    buf = io.BytesIO()
    transparent.save(buf, "PNG")
    good.append(("all-transparent", buf.getvalue(), True))
    base = _png("RGB", (64, 64))
    bad = [
        ("empty", b"", False),
        ("one byte", b"\x89", False),
        ("text", b"hello, I am not an image" * 10, False),
        ("html", b"<html><script>alert(1)</script></html>", False),
        ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>', False),
        ("gif", _png("P", fmt="GIF"), False),
        ("tiff", _png("RGB", fmt="TIFF"), False),
        ("pickle", pickle.dumps(Payload()), False),
        ("bomb 100000^2", _bomb_png(100_000, 100_000), False),
        ("bomb 60000x1000", _bomb_png(60_000, 1_000), False),
        ("zero width", _bomb_png(0, 10), False),
    ]
    rng = np.random.default_rng(0)
    for i in range(40):  # truncations and bit flips of a valid PNG
        cut = int(rng.integers(1, len(base)))
        bad.append((f"truncated {cut}", base[:cut], None))
        flipped = bytearray(base)
        for j in rng.integers(0, len(base), 8):
            flipped[j] ^= 0xFF
        bad.append((f"flipped {i}", bytes(flipped), None))
    bad += [
        (f"random {i}", rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes(), False)
        for i in range(20)
    ]
    return good + bad


# -------------------------------------------------------------------------------- checkpoints
def _checkpoint(meta: dict | None = None, tensors: dict | None = None, model=None) -> bytes:
    model = model or build_model("small_cnn")
    if tensors is None:
        tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    meta = meta if meta is not None else build_metadata(model)
    return st_save(tensors, metadata={META_KEY: json.dumps(meta) if not isinstance(meta, str) else meta})


def checkpoint_inputs():
    """(label, weights, metadata json or None, must_be_accepted), one at a time: held all at once,
    the 13 MB checkpoints would take gigabytes."""
    model = build_model("small_cnn")
    state = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    base = build_metadata(model)
    yield ("valid", _checkpoint(base, state), None, True)
    yield (("valid float16", _checkpoint(base, {k: v.half() for k, v in state.items()}), None, True))
    yield (("valid + metrics with values", _checkpoint({**base, "metrics": {"test_accuracy": 0.5}}, state), None, True))

    def meta_variant(label, **changes):
        meta = {**base, **changes}
        yield ((f"meta {label}", _checkpoint(meta, state), None, False))
        yield ((f"json {label}", _checkpoint(base, state), json.dumps(meta).encode(), False))

    for label, value in [("list", [1, 2, 3]), ("string", "oops"), ("number", 3)]:
        yield from meta_variant(f"metrics {label}", metrics=value)
        yield from meta_variant(f"recipe {label}", recipe=value)
        yield from meta_variant(f"arch_kwargs {label}", arch_kwargs=value)
    for size in (
        [1, 560, 560],
        [1, -28, -28],
        [1, 28.7, 28.2],
        [2, 28, 28],
        [1, 28],
        "28",
        [],
        [True, 28, 28],
        [1, 0, 0],
        [1, 10**9, 10**9],
        [3, 28, 28],
        None,
    ):
        yield from meta_variant(f"input_size {size!r}", input_size=size)
    names_variants = [
        ("a string", "0123456789"),
        ("ints", list(range(10))),
        ("one", ["a"]),
        ("empty", []),
        ("20000", [str(i) for i in range(20_000)]),
        ("long name", ["x" * 1000] + [str(i) for i in range(9)]),
        ("1.2 million", [str(i) for i in range(1_200_000)]),
        ("nested", [["a"]] * 10),
        ("11", [str(i) for i in range(11)]),
    ]
    for label, names in names_variants:
        yield from meta_variant(f"class_names {label}", class_names=names)
    for key in ("mean", "std"):
        for label, value in [
            ("zero", [0.0]),
            ("negative", [-1.0]),
            ("inf", [math.inf]),
            ("nan", [math.nan]),
            ("string", "0.5"),
            ("empty", []),
            ("two", [0.5, 0.5]),
            ("bool", [True]),
            ("null", None),
        ]:
            if key == "mean" and label in ("zero", "negative"):
                continue  # a zero or negative mean is a valid normalisation
            yield from meta_variant(f"{key} {label}", **{key: value})
    for label, value in [("int", 5), ("unknown", "resnet9000"), ("empty", ""), ("long", "x" * 500), ("null", None)]:
        yield from meta_variant(f"arch {label}", arch=value)
    yield from meta_variant("format missing", format="something-else")
    yield from meta_variant("description int", description=42)
    yield from meta_variant("dataset list", dataset=["digits"])
    deep = "[" * 100_000 + "]" * 100_000
    yield (
        (
            "deep metadata json",
            _checkpoint(base, state),
            f'{{"format": "advlens-checkpoint", "x": {deep}}}'.encode(),
            False,
        )
    )
    yield (("deep embedded metadata", _checkpoint(deep, state), None, False))
    yield (("metadata not json", _checkpoint(base, state), b"{nope", False))
    yield (("metadata not utf-8", _checkpoint(base, state), b"\xff\xfe\x00", False))
    yield (("metadata a list", _checkpoint(base, state), b"[1, 2]", False))
    yield (("metadata 5 MB", _checkpoint(base, state), json.dumps({**base, "pad": "x" * 5_000_000}).encode(), False))
    yield (("no metadata", st_save(state), None, False))
    for dtype in (torch.int8, torch.uint8, torch.int32, torch.bool, torch.float64):
        bad = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
        yield ((f"weights {dtype}", _checkpoint(base, bad), None, False))
    key = "model.net.fc1.weight"
    for label, tensor in [
        ("nan", torch.full_like(state[key], math.nan)),
        ("inf", torch.full_like(state[key], math.inf)),
        ("wrong shape", torch.zeros(3, 3)),
        ("scalar", torch.zeros(())),
    ]:
        yield ((f"{key} {label}", _checkpoint(base, {**state, key: tensor}), None, False))
    yield (("missing tensor", _checkpoint(base, {k: v for k, v in state.items() if k != key}), None, False))
    yield (("extra tensor", _checkpoint(base, {**state, "model.evil": torch.zeros(1)}), None, False))
    yield (("no tensors", _checkpoint(base, {"x": torch.zeros(1)}), None, False))
    blob = _checkpoint(base, state)
    yield (("pickle", pickle.dumps(Payload()), json.dumps(base).encode(), False))
    buf = io.BytesIO()
    torch.save({"a": Payload()}, buf)
    yield (("torch.save zip", buf.getvalue(), json.dumps(base).encode(), False))
    yield (("empty", b"", None, False))
    yield (("header length huge", struct.pack("<Q", 2**62) + b"{}", None, False))
    yield (("header length past the end", struct.pack("<Q", 500) + b"{}", None, False))
    yield (("header a list", struct.pack("<Q", 2) + b"[]", None, False))
    yield (("header not json", struct.pack("<Q", 4) + b"{abc", None, False))
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    for label, edit in [
        ("negative shape", lambda h: h[key].update(shape=[-1, 3136])),
        ("float shape", lambda h: h[key].update(shape=[1024.5, 3136])),
        ("string dtype", lambda h: h[key].update(dtype="F99")),
        ("offsets past end", lambda h: h[key].update(data_offsets=[0, 10**12])),
        ("entry a list", lambda h: h.__setitem__(key, [1, 2])),
    ]:
        h = json.loads(json.dumps(header))
        edit(h)
        text = json.dumps(h).encode()
        yield ((f"header {label}", struct.pack("<Q", len(text)) + text + blob[8 + n :], None, False))
    rng = np.random.default_rng(1)
    for i in range(30):  # truncations and bit flips of a valid checkpoint
        cut = int(rng.integers(1, len(blob)))
        yield ((f"truncated {cut}", blob[:cut], None, False))
        flipped = bytearray(blob)
        for j in rng.integers(0, 8 + n, 4):  # inside the header: shapes, dtypes, offsets, metadata
            flipped[j] = int(rng.integers(0, 256))
        yield ((f"header flipped {i}", bytes(flipped), None, None))


# ------------------------------------------------------------------------------------ configs
def config_inputs() -> list[tuple[str, object, bool]]:
    """(label, JSON-like config, must_be_accepted)."""
    good = {"objective": "pgd_at", "dataset": "digits", "epochs": 1, "max_steps": 2}
    out: list[tuple[str, object, bool]] = [("valid", good, True), ("defaults", {}, True)]
    out.append(("valid fgsm_at params", {**good, "objective": "fgsm_at", "objective_params": {"a": 0.3}}, True))
    hostile_values = [True, False, None, "x", "", [1], {"a": 1}, -1, 0, 10**30, 1.5, math.nan, math.inf, -math.inf, "1"]
    for key in (
        "epochs",
        "batch_size",
        "lr",
        "eps",
        "eps_warmup",
        "val_size",
        "eval_size",
        "seed",
        "flip",
        "step_milestones",
        "objective",
        "arch",
        "device",
        "optimizer",
        "schedule",
        "name",
        "data_root",
        "objective_params",
        "init_from",
        "max_steps",
        "crop_padding",
    ):
        for value in hostile_values:
            out.append((f"{key}={value!r}", {**good, key: value}, None))
    for value in (5, ["a"], None, [0.5, 2.0], [0.1] * 1000):
        out.append((f"step_milestones={value!r}"[:60], {**good, "step_milestones": value}, False))
    out.append(("step_milestones=[] (no decay)", {**good, "step_milestones": []}, True))
    deep: object = 1
    for _ in range(5_000):
        deep = {"a": deep}
    out += [
        ("not a dict", [1, 2, 3], False),
        ("a string", "pgd_at", False),
        ("unknown key", {**good, "evil": 1}, False),
        ("deep", {**good, "objective_params": deep}, False),
        ("nested params", {**good, "objective_params": {"steps": {"x": 1}}}, False),
        ("unknown param", {**good, "objective_params": {"magic": 1}}, False),
        ("epochs true", {**good, "epochs": True}, False),
        ("val_size too large", {**good, "val_size": 10_000}, False),
        ("init_from traversal", {**good, "init_from": "../../../../etc/passwd"}, False),
        ("init_from pickle", {**good, "init_from": "/tmp/evil.pt"}, False),
    ]
    return out


# ---------------------------------------------------------------------------------- the test
def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(label: str, fn, must_accept):
    t0 = time.perf_counter()
    try:
        fn()
        accepted = True
    except CLEAR as exc:
        accepted = False
        assert str(exc).strip() and "Traceback" not in str(exc), label
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"{label} took {seconds:.1f} s"
    if must_accept is not None:
        assert accepted == must_accept, f"{label}: {'refused' if must_accept else 'accepted'}"
    return accepted


@pytest.mark.slow
def test_hostile_inputs_end_in_a_clear_error_or_a_correct_acceptance(tmp_path):
    MARKER.unlink(missing_ok=True)
    rss0 = _rss_kb()
    images, configs = image_inputs(), config_inputs()
    count = len(images) + len(configs)

    for label, blob, must in images:
        for size in ((1, 28, 28), (3, 32, 32)):
            notes: list[str] = []

            def decode(blob=blob, size=size, notes=notes, label=label):
                x = load_upload(blob, size, name=label, invert_if_light=size[0] == 1, notes=notes)
                assert x.shape == (1, *size) and torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1

            _run(f"image {label} {size}", decode, must)

    from advlens.zoo import import_checkpoint, list_models

    for i, (label, weights, meta, must) in enumerate(checkpoint_inputs()):
        count += 1

        def load(weights=weights, meta=meta, i=i):
            model, _ = load_checkpoint_upload(weights, meta, name=f"fuzz{i}.safetensors")
            assert torch.isfinite(model(torch.rand(2, 1, 28, 28))).all()
            import_checkpoint(weights, meta, f"fuzz{i}.safetensors")

        _run(f"checkpoint {label}", load, must)

    for label, cfg, must in configs:
        _run(f"config {label}", lambda cfg=cfg: validate(TrainConfig.from_dict(cfg)), must)

    assert count >= 300, count
    assert not MARKER.exists(), "an input executed code"
    grown_mb = (_rss_kb() - rss0) / 1024
    assert grown_mb < 1024, f"memory grew by {grown_mb:.0f} MB"

    # No page broken afterwards: bad files dropped straight into the models folder are listed as
    # unreadable, and the zoo, the CLI and the Home page still work.
    from advlens.paths import user_models_dir

    folder = user_models_dir()
    dropped = [c for _, c in zip(range(40), checkpoint_inputs())]
    for i, (_label, weights, meta, _must) in enumerate(dropped):
        (folder / f"dropped{i}.safetensors").write_bytes(weights)
        if meta is not None:
            (folder / f"dropped{i}.json").write_bytes(meta)
    listed = next(c for c in checkpoint_inputs() if c[0] == "json metrics list")  # the defect that broke Home for all
    (folder / "listmetrics.safetensors").write_bytes(listed[1])
    (folder / "listmetrics.json").write_bytes(listed[2])
    everything = list_models(include_unreadable=True)
    assert any(e.problem for e in everything) and all(e.name for e in everything)
    from advlens.cli import main

    assert main(["models"]) == 0
    from streamlit.testing.v1 import AppTest

    home = AppTest.from_file(str(ROOT / "dashboard/home.py"), default_timeout=240).run()
    assert not home.exception, [e.value for e in home.exception]
    assert any("cannot be used" in w.value for w in home.warning)
