"""Decoding and fitting single images: uploads, folder files and sample photos.

Uploads may be PNG, JPEG, WebP or BMP. EXIF orientation is applied, the colour mode is
converted to what the model needs (RGB or grayscale), and the image is centre-cropped and
resized (or only resized) to the model's input size with OpenCV.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .base import DataError

UPLOAD_FORMATS = {"PNG", "JPEG", "WEBP", "BMP"}
UPLOAD_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp"]
MAX_PIXELS = 50_000_000
MAX_IMAGE_BYTES = 200_000_000  # an image file read from a path (Streamlit's own upload limit is 200 MB)


WHITE = (255, 255, 255)


# EXIF orientation -> the transpose that undoes it (the table of ImageOps.exif_transpose)
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
REDUCE_MARGIN = 4  # a reduced image keeps at least 4x the pixels per side the model needs
_REDUCIBLE = {"L", "RGB", "RGBA", "LA", "I", "F", "CMYK"}  # modes Image.reduce averages correctly


def decode_image(
    blob: bytes,
    name: str = "the image",
    formats: set[str] | None = UPLOAD_FORMATS,
    background: tuple[int, int, int] = WHITE,
    notes: list[str] | None = None,
    fit: tuple[int, int] | None = None,
) -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB numpy array, with EXIF orientation applied.

    Transparent pixels are composited onto ``background`` (white by default): dropping the alpha
    channel would turn a drawing on a transparent canvas into whatever colour its hidden pixels
    hold, often all black. What was done is appended to ``notes`` when given.

    MPO files (what many cameras write: a JPEG followed by more pictures) are read as their first
    picture. ``fit`` = (height, width) the image is for: a larger image is reduced while it is
    decoded, to about ``REDUCE_MARGIN`` times that size (JPEG decodes at 1/2, 1/4 or 1/8 scale; other
    formats are box-reduced right after decoding, before any conversion or copy), so a 49-megapixel
    photo never exists as float or RGB copies at full size."""
    if not blob:
        raise DataError(f"{name} is empty.")
    try:
        with Image.open(io.BytesIO(blob)) as im:
            kind = "JPEG" if im.format == "MPO" else im.format  # MPO: a JPEG with more pictures after it
            if formats is not None and kind not in formats:
                raise DataError(
                    f"{name} is a {im.format or 'unknown'} image; use one of: {', '.join(sorted(formats))}."
                )
            if im.width * im.height > MAX_PIXELS:
                raise DataError(
                    f"{name} is too large ({im.width}x{im.height}, {im.width * im.height / 1e6:.0f} megapixels); "
                    f"at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted."
                )
            if im.format == "MPO" and notes is not None and getattr(im, "n_frames", 1) > 1:
                notes.append(f"{name} holds {im.n_frames} pictures (an MPO file); the first one was used.")
            orientation = im.getexif().get(0x0112, 1)
            im = _decode_reduced(im, fit, kind)
            if orientation in _ORIENTATION:
                im = im.transpose(_ORIENTATION[orientation])
            rgb = np.asarray(_flatten(im, background, name, notes))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{name} could not be decoded as an image ({type(exc).__name__}: {exc}). "
            "Upload a valid PNG, JPEG, WebP or BMP file."
        ) from None
    return rgb


def _decode_reduced(im: Image.Image, fit: tuple[int, int] | None, kind: str | None) -> Image.Image:
    """Decode ``im``, reduced by a whole factor when it is over ``REDUCE_MARGIN`` times ``fit``."""
    if fit is None:
        im.load()
        return im
    side = REDUCE_MARGIN * max(fit)  # either side may end up as the height (EXIF rotations)
    if kind == "JPEG":
        im.draft(im.mode, (side, side))  # the decoder itself scales by 1/2, 1/4 or 1/8
    im.load()
    factor = min(im.width, im.height) // side
    if factor < 2:
        return im
    if im.mode not in _REDUCIBLE:  # a palette or 1-bit image: its colours, not its indices, are averaged
        im = im.convert("RGBA" if im.mode in ("PA", "La", "RGBa") or "transparency" in im.info else "RGB")
    return im.reduce(factor)


def _flatten(im: Image.Image, background: tuple[int, int, int], name: str, notes: list[str] | None) -> Image.Image:
    """``im`` as RGB, its transparency composited onto ``background``."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    if alpha.min() == 255:
        return rgba.convert("RGB")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    if notes is not None:
        share = float((alpha < 255).mean()) * 100
        colour = "white" if background == WHITE else f"RGB{background}"
        notes.append(f"Transparent pixels ({share:.0f}% of {name}) were filled with {colour}.")
    return canvas.convert("RGB")


def fit_image(rgb: np.ndarray, size: tuple[int, int, int], mode: str = "center_crop") -> torch.Tensor:
    """HxWx3 uint8 RGB -> (C, H, W) float in [0,1] for an input of ``size`` = (C, H, W)."""
    c, h, w = size
    if mode not in {"center_crop", "resize"}:
        raise ValueError(f"mode must be 'center_crop' or 'resize', not {mode!r}")
    img = rgb
    if mode == "center_crop":
        ih, iw = img.shape[:2]
        target = w / h
        if iw / ih > target:
            new_w = max(1, round(ih * target))
            x0 = (iw - new_w) // 2
            img = img[:, x0 : x0 + new_w]
        else:
            new_h = max(1, round(iw / target))
            y0 = (ih - new_h) // 2
            img = img[y0 : y0 + new_h]
    if img.shape[:2] != (h, w):
        shrinking = img.shape[0] > h or img.shape[1] > w
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if c == 1:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None]
    elif c != 3:
        raise ValueError(f"only 1 or 3 input channels are supported, not {c}")
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float().div_(255.0)


def load_upload(
    blob: bytes,
    size: tuple[int, int, int],
    name: str = "the upload",
    mode: str = "center_crop",
    invert_if_light: bool = False,
    background: tuple[int, int, int] = WHITE,
    notes: list[str] | None = None,
) -> torch.Tensor:
    """An uploaded file -> (1, C, H, W) float in [0,1], ready for a model of input ``size``.

    ``invert_if_light`` inverts grayscale images with a light background, so a photo of a dark
    digit on white paper looks like MNIST (white on black). Transparency is filled with
    ``background``; what was done to the image is appended to ``notes`` when given.
    """
    x = fit_image(decode_image(blob, name, background=background, notes=notes, fit=tuple(size[1:])), size, mode)
    if invert_if_light and size[0] == 1 and float(x.mean()) > 0.5:
        x = 1.0 - x
        if notes is not None:
            notes.append(
                "The image is light with dark strokes, so it was inverted to match the model's data (light on dark)."
            )
    return x.unsqueeze(0)


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (1, C, H, W) float in [0,1] -> HxWxC uint8 (C is 1 or 3) for display."""
    if x.ndim == 4:
        x = x[0]
    arr = (x.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return np.transpose(arr, (1, 2, 0))


def encode_png(x: torch.Tensor) -> bytes:
    """Lossless PNG bytes of a (C, H, W) image in [0,1] (8 bits per channel)."""
    arr = to_uint8_hwc(x)
    if arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise DataError("PNG encoding failed")
    return buf.tobytes()


def resize_batch(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """A float batch (N, C, H, W) in [0, 1] resized (bilinear) to ``size``'s height and width; the
    same tensor when it already fits (e.g. the 28x28 digits for a model of another input size)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    return torch.nn.functional.interpolate(x, size=tuple(size[1:]), mode="bilinear", align_corners=False).clamp(0, 1)
