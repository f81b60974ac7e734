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


# ------------------------------------------------------- issue 27: each hostile input of its list
# Every case ends in one clear line or a correct acceptance within 1 s of CPU and well under 1 GB:
# CPU time (not wall time), so a loaded machine does not make a case look slow; memory as the growth
# of the peak resident memory (Pillow's buffers included) where Linux lets a process reset that peak
# (/proc/self/clear_refs), else as the peak of Python's allocations (tracemalloc: numpy and torch too).
def _rss_mb() -> tuple[int, int]:
    with open("/proc/self/status") as fh:
        fields = dict(line.split(":", 1) for line in fh if line.startswith(("VmRSS", "VmHWM")))
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        rss, peak = _rss_mb()
        return peak - rss < 16  # the peak was reset (a kernel that ignores "5" leaves it high)
    except OSError:
        return False


class Bounded:
    """``with Bounded("label", mb=...)``: the block must take under 1 s of CPU and under ``mb`` MB."""

    def __init__(self, label: str, mb: int = 1024):
        self.label, self.mb = label, mb

    def __enter__(self):
        import tracemalloc

        self.rss = _rss_mb()[0] if _reset_peak_rss() else None
        if self.rss is None:
            tracemalloc.start()
        self.t0 = time.process_time()
        return self

    def __exit__(self, *exc):
        import tracemalloc

        seconds = time.process_time() - self.t0
        if self.rss is None:
            grown = tracemalloc.get_traced_memory()[1] // 2**20
            tracemalloc.stop()
        else:
            grown = _rss_mb()[1] - self.rss
        if exc[0] is not None:
            return False
        assert seconds < 1.0, f"{self.label} took {seconds:.2f} s of CPU"
        assert grown < self.mb, f"{self.label}: memory grew by {grown} MB"
        return False


@pytest.fixture(scope="module")
def cli():
    """``advlens.cli.main`` with its command modules imported (once: imports are not the input's cost)."""
    import advlens.evaluation.known
    import advlens.training.jobs
    import advlens.zoo  # noqa: F401
    from advlens.cli import build_parser, main

    build_parser()
    return main


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# 1. quadratic parsing, and a length cap on every text that reaches a parser
@pytest.mark.parametrize("text", ["8" * 60_000, "8" * 8_000, "8" * 60_000 + "/255", " " * 60_000 + "8/255"])
def test_27_1_budgets_parse_in_linear_time_and_long_texts_are_refused(text):
    from advlens.budget import _FRACTION, BudgetError, parse_linf

    with Bounded("parse_linf", mb=16):
        with pytest.raises(BudgetError, match=r"characters long; write a number such as 0.0314"):
            parse_linf(text)
        _FRACTION.fullmatch(text)  # the pattern itself, past the cap: one way to match each number
    assert parse_linf(" 8 / 255 ") == pytest.approx(8 / 255) and parse_linf("8./255") == pytest.approx(8 / 255)
    assert parse_linf(".5") == 0.5 and parse_linf("1e-2/1") == pytest.approx(0.01)


def test_27_1_model_names_and_config_texts_are_capped():
    from advlens.zoo import get_entry
    from dashboard.model_picker import resolve_model_name

    long_name = "digits_small_cnn+" + "jpeg75+" * 20_000
    with Bounded("long model names"):
        with pytest.raises(KeyError, match="characters is too long"):
            get_entry(long_name)
        assert resolve_model_name(long_name, ["digits_small_cnn"]) == (None, "")
        with pytest.raises(ConfigError, match="at most 1,000,000 are accepted"):
            TrainConfig.from_json_file(_big_config())


ATTACK_ONE = ["attack", "--model", "digits_small_cnn", "--dataset", "digits", "--index", "0", "--attack", "hopskipjump"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--dataset", "digits", "--step-milestones", "0.5," * 50_000], "at most 100 numbers"),
        (["train", "--dataset", "digits", "--arch-option", "hidden=" + "1," * 50_000], "whole number from 8"),
        (["certify", "--model", "digits_small_cnn", "--sigma", "0.25", "--radii", "1," * 50_000], "at most 100"),
        (ATTACK_ONE + ["--set", "start_draws=" + "9" * 100_000], "must be a whole number"),
        (ATTACK_ONE + ["--set", "start_draws=" + "9" * 4_000], "is too large"),
        (ATTACK_ONE + ["--set", "start_draws=" + "a" * 100_000], "must be a whole number"),
    ],
)
def test_27_1_long_lists_on_the_command_line_are_one_short_line(args, words, capsys, cli):
    with Bounded("a 100,000-character list"):
        assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and len(err) < 300, err[:400]


def _big_config() -> Path:
    path = Path(os.environ["ADVLENS_HOME"]).parent / "big.json"
    path.write_text('{"name": "' + "x" * 1_100_000 + '"}')
    return path


# 2. a read-only, full or misplaced ADVLENS_HOME: one line that names it
def _small_checkpoint(tmp_path: Path, stem: str = "mine") -> Path:
    from advlens.models import save_checkpoint

    return save_checkpoint(build_model("small_cnn"), tmp_path / stem)


TRAIN_DETACH = ["train", "--objective", "standard", "--dataset", "digits", "--epochs", "1", "--detach"]


def test_27_2_a_home_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys, cli):

    ckpt = _small_checkpoint(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "a_file" / "home"))
    for argv in (["import", str(ckpt)], TRAIN_DETACH, ["runs"]):
        with Bounded(" ".join(argv)):
            assert cli(argv) == 2, argv
        line = _one_line(capsys.readouterr().err)
        assert "ADVLENS_HOME" in line and str(tmp_path / "a_file" / "home") in line and "not a folder" in line


def test_27_2_a_read_only_or_full_home_is_one_line(tmp_path, monkeypatch, capsys, cli):
    """Root ignores permission bits, so the file system's answers are injected where they arise: a
    read-only file system refuses to create the temporary file (EROFS) and SQLite refuses to write
    (a database opened read-only, SQLite's own error); a full disk fails the write (ENOSPC)."""
    import errno
    import sqlite3

    import advlens.jobs.store as store_mod
    import advlens.models.checkpoint as ckpt_mod
    from advlens.paths import runs_dir

    ckpt = _small_checkpoint(tmp_path)

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    for module, name, fails, words in (
        (ckpt_mod.tempfile, "mkstemp", read_only, "read-only"),
        (os, "fsync", full, "full"),
    ):
        with monkeypatch.context() as m:
            m.setattr(module, name, fails)
            assert cli(["import", str(ckpt)]) == 2
            line = _one_line(capsys.readouterr().err)
            assert line.startswith("error: ADVLENS_HOME (") and words in line, line
            assert cli(TRAIN_DETACH) == 2
            line = _one_line(capsys.readouterr().err)
            assert "ADVLENS_HOME" in line and words in line, line
            runs = runs_dir()  # the failed submission left no half-made run folder (seen on a real full disk)
            assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())

    store_mod.RunStore().list_runs()  # the store exists; now the file system turns read-only
    connect = sqlite3.connect
    monkeypatch.setattr(
        store_mod.sqlite3, "connect", lambda path, **kw: connect(f"file:{path}?mode=ro", uri=True, **kw)
    )
    store_mod.RunStore._initialised.clear()
    assert cli(TRAIN_DETACH) == 2
    line = _one_line(capsys.readouterr().err)
    assert "ADVLENS_HOME" in line and "read-only" in line, line


def test_27_2_pages_on_a_home_that_cannot_hold_the_store_say_so_in_one_line(tmp_path, monkeypatch):
    """Found with a real read-only home (as an unprivileged user, outside CI): the Training and Evaluate
    pages ended in a traceback. A home under a regular file fails the same way for root too."""
    from streamlit.testing.v1 import AppTest

    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("ADVLENS_HOME", str(tmp_path / "a_file" / "home"))
    for page in ("training", "evaluate"):
        at = AppTest.from_file(str(ROOT / f"dashboard/{page}.py"), default_timeout=120).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        (error,) = at.error
        assert error.value.startswith("ADVLENS_HOME (") and "not a folder" in error.value, error.value
        assert "Background jobs" in error.value
    # the Evaluate page still offers what runs without the store
    assert any(s.value == "Common corruptions" for s in at.subheader)


# 3. an import under the name of another model; replacing an import needs a confirmation
def test_27_3_a_name_the_zoo_has_is_refused_and_replacing_an_import_needs_a_confirmation(tmp_path, capsys, cli):
    from advlens.paths import user_models_dir
    from advlens.zoo import NameTaken, import_checkpoint, list_models

    blob = _small_checkpoint(tmp_path).read_bytes()
    for taken in ("digits_small_cnn", "efficientnet_lite0"):
        with (
            Bounded(f"import {taken}"),
            pytest.raises(NameTaken, match=f"model called '{taken}' is in the zoo already"),
        ):
            import_checkpoint(blob, None, f"{taken}.safetensors")
        assert [e.name for e in list_models(include_unreadable=True)].count(taken) == 1
    folder = user_models_dir()  # a collision written before imports had to be new: listed once, and why
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "digits_small_cnn.safetensors").write_bytes(blob)
    (folder / "digits_small_cnn.json").write_text(json.dumps(build_metadata(build_model("small_cnn"))))
    listed = [e for e in list_models(include_unreadable=True) if e.name == "digits_small_cnn"]
    assert [e.source for e in listed] == ["asset", "imported"] and "belongs to a shipped model" in listed[1].problem
    assert [e.name for e in list_models()].count("digits_small_cnn") == 1
    first = import_checkpoint(blob, None, "mine.safetensors")
    with pytest.raises(NameTaken, match="--replace") as again:
        import_checkpoint(blob, None, "mine.safetensors")
    assert again.value.replaceable
    other = _small_checkpoint(tmp_path, "other")  # other random weights
    assert cli(["import", str(other), "--name", "mine"]) == 2
    assert "--replace" in _one_line(capsys.readouterr().err)
    assert load_checkpoint_weights(first.path) != load_checkpoint_weights(other)  # still the first import
    assert cli(["import", str(other), "--name", "mine", "--replace"]) == 0
    assert load_checkpoint_weights(first.path) == load_checkpoint_weights(other)
    assert [e.name for e in list_models()].count("mine") == 1


def load_checkpoint_weights(path: Path) -> float:
    from advlens.models import load_checkpoint

    return float(load_checkpoint(path)[0].net.fc1.weight.detach().sum())


def test_27_3_the_home_import_box_asks_before_replacing(tmp_path):
    from streamlit.testing.v1 import AppTest

    def box():
        from dashboard.checkpoint_import import checkpoint_loader

        checkpoint_loader()

    path = _small_checkpoint(tmp_path, "boxed")
    app = AppTest.from_function(box, default_timeout=60).run()
    app.text_input(key="ckpt_path").set_value(str(path)).run()
    app.button(key="ckpt_import_path").click().run()
    assert "Imported **boxed**" in app.success[0].value
    app.button(key="ckpt_import_path").click().run()
    assert not app.success and "Replace" in app.error[0].value
    app.checkbox(key="ckpt_replace").check().run()
    app.button(key="ckpt_import_path").click().run()
    assert not app.exception and "Imported **boxed**" in app.success[0].value
    (tmp_path / "zero.safetensors").symlink_to("/dev/zero")
    app.text_input(key="ckpt_path").set_value(str(tmp_path / "zero.safetensors")).run()
    app.button(key="ckpt_import_path").click().run()
    assert "not a regular file" in app.error[0].value


# 4. links to /dev/zero and named pipes in the models folder and as configs
def test_27_4_devices_and_pipes_are_refused_unread(tmp_path, capsys, cli):
    from advlens.models import load_checkpoint
    from advlens.paths import user_models_dir
    from advlens.zoo import list_models

    folder = user_models_dir()
    folder.mkdir(parents=True)
    blob = _small_checkpoint(tmp_path).read_bytes()
    (folder / "zero.safetensors").write_bytes(blob)
    (folder / "zero.json").symlink_to("/dev/zero")
    (folder / "piped.safetensors").write_bytes(blob)
    os.mkfifo(folder / "piped.json")
    os.mkfifo(folder / "pipe.defense.json")
    (folder / "endless.defense.json").symlink_to("/dev/zero")
    with Bounded("listing the zoo", mb=256):
        problems = {e.name: e.problem for e in list_models(include_unreadable=True) if e.problem}
    assert "character device, not a regular file" in problems["zero"] and "named pipe" in problems["piped"]
    assert "named pipe" in problems["pipe"] and "character device" in problems["endless"]
    with Bounded("loading a checkpoint beside a pipe"), pytest.raises(CheckpointError, match="named pipe"):
        load_checkpoint(folder / "piped.safetensors")
    os.mkfifo(tmp_path / "cfg.json")
    for config in ("/dev/zero", str(tmp_path / "cfg.json")):
        with Bounded(f"train --config {config}", mb=64):
            assert cli(["train", "--config", config]) == 2
        assert "not a regular file; it was not read" in _one_line(capsys.readouterr().err)


# 5. MPO, what many cameras write: its first picture
def test_27_5_an_mpo_photo_is_read_as_its_first_picture():
    rng = np.random.default_rng(5)
    first = Image.fromarray(rng.integers(0, 120, (48, 64, 3), dtype=np.uint8))
    second = Image.fromarray(rng.integers(150, 256, (48, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    notes: list[str] = []
    with Bounded("an MPO"):
        x = load_upload(buf.getvalue(), (3, 32, 32), name="camera.jpg", notes=notes)
    expected = load_upload(_jpeg(first), (3, 32, 32))
    assert float((x - expected).abs().mean()) < 0.02 and float(x.mean()) < 0.5  # the first, darker picture
    assert any("2 pictures" in n and "first" in n for n in notes)


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    return buf.getvalue()


# 6. torn .tmp files of a worker killed mid-write
def test_27_6_stale_temporary_files_are_removed_on_resume():
    from advlens.jobs.store import RunStore
    from advlens.training.loop import Trainer

    store = RunStore()
    cfg = TrainConfig.from_dict({"objective": "standard", "dataset": "digits", "epochs": 1, "max_steps": 2})
    rec = store.create_run(cfg.to_dict(), "cpu")
    torn = [
        rec.folder / ".final.safetensors.k2x9.tmp",
        rec.folder / "checkpoints" / ".step-00000002.safetensors.a1.tmp",
    ]
    for path in torn:
        path.write_bytes(b"\0" * 4096)
    kept = rec.folder / "checkpoints" / "notes.tmp"  # not one of ours: left alone
    kept.write_text("x")
    Trainer(cfg, rec.id, store, echo=False).setup()  # loads the data and the model, then resumes
    assert not any(p.exists() for p in torn) and kept.exists()
    assert "removed 2 temporary file(s)" in (rec.folder / "train.log").read_text()


# 7. a 49-megapixel image is reduced while it is decoded
def _flat_png(w: int, h: int) -> bytes:
    """A grey w x h RGB PNG, written directly (Pillow takes seconds to encode 49 megapixels)."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = (b"\x00" + b"\x80" * (3 * w)) * h
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_27_7_a_49_megapixel_image_is_reduced_while_decoding(kind):
    """The whole image at full size once (Pillow's 4 bytes a pixel for a PNG: 196 MB; a JPEG decodes
    at 1/8 scale), never the RGB, float and resized copies that made ``predict`` peak at 1.19 GB."""
    if kind == "png":
        blob = _flat_png(7000, 7000)
    else:
        blob = _jpeg(Image.new("L", (7000, 7000), 128).convert("RGB"))
    for size in ((1, 28, 28), (3, 224, 224)):
        with Bounded(f"{kind} for {size}", mb=320):
            x = load_upload(blob, size, name="big")
        assert x.shape == (1, *size) and abs(float(x.mean()) - 128 / 255) < 0.01


# 8. a trailing '+' is an empty transform name, never the bare base model
@pytest.mark.parametrize("name", ["digits_small_cnn+", "digits_small_cnn++jpeg75", "digits_small_cnn+jpeg75+ "])
def test_27_8_an_empty_transform_name_is_refused(name, capsys, cli):
    from advlens.zoo import get_entry, load_model
    from dashboard.model_picker import resolve_model_name

    with Bounded(name):
        with pytest.raises(KeyError, match="empty transform name"):
            get_entry(name)
        with pytest.raises(KeyError, match="empty transform name"):
            load_model(name, "cpu")
        assert resolve_model_name(name, ["digits_small_cnn"]) == (None, "")
    image = Path(os.environ["ADVLENS_HOME"]).parent / "x.png"
    image.write_bytes(_png("L"))
    assert cli(["predict", "--model", name, "--image", str(image)]) == 2
    assert "empty transform name" in _one_line(capsys.readouterr().err)
    assert get_entry("digits_small_cnn+jpeg75").name == "digits_small_cnn+jpeg75"


def test_27_8_the_model_picker_says_why_a_link_with_a_trailing_plus_is_not_used():
    from streamlit.testing.v1 import AppTest

    def picker():
        from dashboard.model_picker import model_picker

        model_picker()

    app = AppTest.from_function(picker, default_timeout=60)
    app.query_params["model"] = "digits_small_cnn+"
    app.run()
    assert not app.exception
    assert any("empty transform name" in w.value for w in app.warning), [w.value for w in app.warning]


def test_a_bad_attack_setting_in_a_link_is_ignored_in_one_short_line():
    """A link's value that is not a valid setting falls back to the default with one warning, which
    shows the start of the value and its length, never a 5,000-digit number in full."""
    from streamlit.testing.v1 import AppTest

    for value, shown in (("abc", "start_draws='abc'"), ("9" * 5_000, "(5,000 characters)"), ("5", "start_draws='5'")):
        at = AppTest.from_file(str(ROOT / "dashboard/attack_lab.py"), default_timeout=120)
        at.query_params.update(
            {"model": "digits_small_cnn", "attack": "hopskipjump", "start_draws": value, "auto": "0"}
        )
        at.run()
        assert not at.exception
        assert at.number_input(key="atk_hopskipjump_start_draws").value == 200  # the default
        (warning,) = [w.value for w in at.warning if "from the link" in w.value]
        assert shown in warning and len(warning) < 200, warning
