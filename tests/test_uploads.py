"""Uploaded images: formats, EXIF orientation, colour conversion, fitting, and corrupt files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from advlens.data import DataError, load_upload


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_png_rgb_exact():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    x = load_upload(encode(arr, "PNG"), (3, 32, 32))
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal((x[0] * 255).round().byte().permute(1, 2, 0), torch.from_numpy(arr))


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP", "PNG"])
def test_formats_decode_and_fit(fmt):
    arr = np.zeros((60, 90, 3), np.uint8)
    arr[:, :45] = 255
    x = load_upload(encode(arr, fmt), (3, 224, 224))
    assert x.shape == (1, 3, 224, 224)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_grayscale_for_one_channel_model_and_inversion():
    arr = np.full((40, 40, 3), 250, np.uint8)  # a dark digit on white paper
    arr[10:30, 18:22] = 5
    x = load_upload(encode(arr, "PNG"), (1, 28, 28), invert_if_light=True)
    assert x.shape == (1, 1, 28, 28)
    assert float(x.mean()) < 0.5 and float(x[0, 0, 14, 14]) > 0.9  # white stroke on black


def test_center_crop_keeps_the_middle():
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = 255  # the centre square is white, the sides black
    x = load_upload(encode(arr, "PNG"), (3, 50, 50), mode="center_crop")
    assert float(x.min()) > 0.99
    y = load_upload(encode(arr, "PNG"), (3, 50, 50), mode="resize")
    assert float(y.min()) < 0.01


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)  # wide image, left half white
    arr[:, :20] = 255
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    x = load_upload(buf.getvalue(), (3, 40, 20), mode="resize")
    # After rotating 90 degrees clockwise, the white half is on top.
    assert float(x[0, :, :20].mean()) > 0.9 and float(x[0, :, 20:].mean()) < 0.1


@pytest.mark.parametrize(
    "blob,match",
    [
        (b"", "empty"),
        (b"not an image at all", "could not be decoded"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "could not be decoded"),
    ],
)
def test_corrupt_upload_gives_clear_error(blob, match):
    with pytest.raises(DataError, match=match):
        load_upload(blob, (3, 32, 32), name="bad.png")


def test_truncated_jpeg_gives_clear_error():
    arr = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    blob = encode(arr, "JPEG")
    with pytest.raises(DataError, match="could not be decoded"):
        load_upload(blob[: len(blob) // 3], (3, 32, 32), name="cut.jpg")


def test_unsupported_format_is_named():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="GIF")
    with pytest.raises(DataError, match="GIF"):
        load_upload(buf.getvalue(), (3, 32, 32))
