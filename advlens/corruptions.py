"""Common corruptions: the 15 CIFAR-10-C corruptions at 5 severities, generated on the fly.

After Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019, arXiv 1903.12261), with the per-severity constants of their CIFAR script
(``ImageNet-C/create_c/make_cifar_c.py`` in github.com/hendrycks/robustness). Our own code, with
NumPy, OpenCV, SciPy, scikit-image and Pillow:

    noise    gaussian_noise, shot_noise, impulse_noise
    blur     defocus_blur, glass_blur, motion_blur, zoom_blur
    weather  snow, frost, fog, brightness
    digital  contrast, elastic_transform, pixelate, jpeg_compression

:func:`corrupt` maps an (N, C, H, W) batch in [0, 1] (C = 1 or 3, any size) to the same batch
corrupted. It is deterministic: image ``i`` draws its randomness from a generator seeded with
``(seed, corruption, severity, keys[i])`` (``keys``: the images' dataset indices, by default their
position), so an image gets the same corruption in any batch and on any machine.

Where this is not an exact replica of the published CIFAR-10-C files (the random draws differ in any
case: the files were made with NumPy's global legacy generator, image after image):

- **frost** overlays crops of six photographs of frost shipped with their code; we have no such
  photographs and draw a procedural frost texture instead (:func:`frost_texture`: branching ice
  needles over a fractal haze, tinted pale blue, mean about 0.45 like a crop of theirs), blended
  with their constants. Its accuracies are not comparable to published frost figures.
- **motion_blur** and **snow** use ImageMagick's ``MotionBlurImage`` through Wand; we apply the same
  one-sided Gaussian line kernel (width 2 * ceil(radius) + 1, weights exp(-i^2 / 2 sigma^2), offsets
  i * (cos a, -sin a)) with OpenCV's ``filter2D`` and bilinear taps, edges replicated. The taps'
  sub-pixel interpolation differs slightly from ImageMagick's.
- **glass_blur** swaps pixels with a neighbour in the same sequential order as theirs (numpy's
  ``randint(-1, 1)`` draws -1 or 0); the Gaussian blur is scikit-image's, as theirs.
- The published files are uint8, made with ``np.uint8`` (truncation); we quantise the result the
  same way (``floor(255 x) / 255``), and feed the PIL-based corruptions (pixelate, JPEG) the image
  rounded to uint8.
- Sizes other than 32x32 (MNIST, ImageNet): the constants are CIFAR's; those measured in pixels
  (defocus radius, glass-blur displacement, motion-blur radius, elastic displacement and smoothing,
  the affine jitter) are scaled by side / 32. Hendrycks' ImageNet-C uses other constants.
- Greyscale images (C = 1): brightness adds to the value directly (the HSV value of a grey pixel),
  snow's greyscale lift uses the image itself, frost uses the texture's luminance.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

from .registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
PAPER = "Hendrycks and Dietterich 2019, arXiv 1903.12261 (CIFAR-10-C constants)"

Array = np.ndarray  # (H, W, C) float32 in [0, 1]


@dataclass(frozen=True)
class Corruption:
    name: str
    title: str
    family: str
    fn: Callable[[Array, int, np.random.Generator], Array]
    exact: bool = True  # False where the published files cannot be replicated (see the docstring)


# ----------------------------------------------------------------------------------- helpers
def _scale(x: Array) -> float:
    return min(x.shape[0], x.shape[1]) / 32.0


def _to_uint8(x: Array) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _pil(x: Array) -> Image.Image:
    u = _to_uint8(x)
    return Image.fromarray(u[..., 0], mode="L") if u.shape[2] == 1 else Image.fromarray(u, mode="RGB")


def _from_pil(img: Image.Image, channels: int) -> Array:
    a = np.asarray(img, dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a[..., :channels]


def _gray(x: Array) -> np.ndarray:
    if x.shape[2] == 1:
        return x[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(x, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def _filter(x: Array, kernel: np.ndarray, border=cv2.BORDER_REFLECT_101) -> Array:
    out = cv2.filter2D(np.ascontiguousarray(x, dtype=np.float32), -1, kernel.astype(np.float32), borderType=border)
    return out.reshape(x.shape)


def _smooth(x: Array, sigma: float) -> Array:
    """scikit-image's Gaussian filter per channel (their ``gaussian(..., multichannel=True)``)."""
    return gaussian(x, sigma=sigma, channel_axis=-1).astype(np.float32)


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """Their anti-aliased disk kernel: a 17x17 (radius <= 8) binary disk, normalised, Gaussian-blurred."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    ksize = (3, 3) if radius <= 8 else (5, 5)
    grid = np.arange(-half, half + 1)
    gx, gy = np.meshgrid(grid, grid)
    k = ((gx**2 + gy**2) <= radius**2).astype(np.float32)
    k /= k.sum()
    return cv2.GaussianBlur(k, ksize=ksize, sigmaX=alias_blur)


def motion_kernel(radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's motion-blur kernel as a 2-D correlation kernel: taps at i * (cos a, -sin a),
    i = 0 .. 2 ceil(radius), weights exp(-i^2 / 2 sigma^2) normalised, each tap spread bilinearly."""
    width = 2 * int(np.ceil(radius)) + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma**2))
    weights /= weights.sum()
    half = width
    k = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    a = np.deg2rad(angle)
    for i, w in enumerate(weights):
        px, py = half + i * np.cos(a), half - i * np.sin(a)
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        fx, fy = px - x0, py - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < k.shape[0] and 0 <= x0 + dx < k.shape[1]:
                    k[y0 + dy, x0 + dx] += w * wy * wx
    return (k / k.sum()).astype(np.float32)


def _motion_blur(x: Array, radius: float, sigma: float, angle: float) -> Array:
    return _filter(x, motion_kernel(radius, sigma, angle), border=cv2.BORDER_REPLICATE)


def plasma_fractal(rng: np.random.Generator, mapsize: int = 32, wibbledecay: float = 3.0) -> np.ndarray:
    """Diamond-square height map in [0, 1] (their ``plasma_fractal``); ``mapsize`` a power of two."""
    maparray = np.zeros((mapsize, mapsize), np.float64)
    stepsize, wibble = mapsize, 100.0

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        corner = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        acc = corner + np.roll(corner, -1, axis=0)
        acc += np.roll(acc, -1, axis=1)
        maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(acc)
        dr = maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize]
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(tt)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / max(maparray.max(), 1e-12)


def _pow2(n: int) -> int:
    return 1 << max(int(np.ceil(np.log2(max(n, 2)))), 1)


def clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre of ``img`` (H, W, C) by ``zoom_factor`` (bilinear) and crop back to H x W."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / zoom_factor)), int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = scizoom(img[top : top + ch, left : left + cw], (zoom_factor, zoom_factor, 1), order=1)
    th, tw = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[th : th + h, tw : tw + w]


def frost_texture(h: int, w: int, rng: np.random.Generator, channels: int = 3) -> Array:
    """A procedural frost crop in [0, 1] (H, W, C): branching ice needles over a fractal haze, pale blue.

    Stands in for the six frost photographs of the original code (not available here)."""
    s = 4  # draw at 4x and shrink, for thin anti-aliased needles
    canvas = np.zeros((h * s, w * s), np.float32)
    n_seeds = max(3, int(round(6 * h * w / 1024)))
    for _ in range(n_seeds):
        x0, y0 = rng.uniform(0, w * s), rng.uniform(0, h * s)
        base = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(4, 8))):  # needles radiating from a seed
            ang = base + rng.normal(0, 0.9)
            length = rng.uniform(0.3, 1.0) * h * s * 0.6
            x1, y1 = x0 + length * np.cos(ang), y0 + length * np.sin(ang)
            cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), float(rng.uniform(0.6, 1.0)), s // 2, cv2.LINE_AA)
            for t in rng.uniform(0.2, 0.9, int(rng.integers(2, 5))):  # side branches
                bx, by = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                bang = ang + rng.choice((-1, 1)) * rng.uniform(0.5, 1.1)
                bl = length * rng.uniform(0.15, 0.35)
                cv2.line(
                    canvas,
                    (int(bx), int(by)),
                    (int(bx + bl * np.cos(bang)), int(by + bl * np.sin(bang))),
                    float(rng.uniform(0.4, 0.8)),
                    max(1, s // 4),
                    cv2.LINE_AA,
                )
    needles = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    needles = cv2.GaussianBlur(needles, (3, 3), 0.5)
    haze = plasma_fractal(rng, _pow2(max(h, w)), 2.0)[:h, :w].astype(np.float32)
    lum = np.clip(0.3 + 0.35 * haze + 0.9 * needles, 0.0, 1.0)
    if channels == 1:
        return lum[..., None]
    tint = np.array([0.82, 0.92, 1.0], np.float32)  # pale blue, as the photographs are
    return np.clip(lum[..., None] * tint, 0.0, 1.0)


# ------------------------------------------------------------------------------- corruptions
def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return x + rng.normal(size=x.shape, scale=c)


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    return rng.poisson(np.clip(x, 0, 1) * c) / c


def impulse_noise(x, severity, rng):
    c = [0.01, 0.02, 0.03, 0.05, 0.07][severity - 1]
    out = x.copy()
    hit = rng.random(x.shape) < c  # scikit-image's 's&p': each value, salt or pepper at even odds
    salt = rng.random(x.shape) < 0.5
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return out


def defocus_blur(x, severity, rng):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    return _filter(x, disk(radius * _scale(x), alias))


def glass_blur(x, severity, rng):
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    delta = max(1, int(round(delta * _scale(x))))
    h, w = x.shape[:2]
    img = np.floor(np.clip(_smooth(x, sigma), 0, 1) * 255.0).astype(np.uint8)
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    shifts = rng.integers(-delta, delta, size=(iterations, len(rows), len(cols), 2))
    for it in range(iterations):  # sequential local swaps, in their order
        for a, r in enumerate(rows):
            for b, col in enumerate(cols):
                dx, dy = shifts[it, a, b]
                r2, c2 = r + dy, col + dx
                tmp = img[r, col].copy()
                img[r, col] = img[r2, c2]
                img[r2, c2] = tmp
    return _smooth(img.astype(np.float32) / 255.0, sigma)


def motion_blur(x, severity, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    s = _scale(x)
    return _motion_blur(x, radius * s, sigma * s, rng.uniform(-45, 45))


def zoom_blur(x, severity, rng):
    top = [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1]
    factors = np.arange(1, top, 0.01)
    out = np.zeros_like(x)
    for z in factors:
        out += clipped_zoom(x, z)
    return (x + out) / (len(factors) + 1)


def snow(x, severity, rng):
    loc, scale, zoom, thresh, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ][severity - 1]
    h, w = x.shape[:2]
    layer = rng.normal(size=(h, w), loc=loc, scale=scale)[..., None]
    layer = clipped_zoom(layer, zoom)
    layer[layer < thresh] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255.0) / 255.0  # their 8-bit PNG round trip
    s = _scale(x)
    layer = _motion_blur(layer.astype(np.float32), radius * s, sigma * s, rng.uniform(-135, -45))
    layer = np.floor(np.clip(layer, 0, 1) * 255.0 + 0.5) / 255.0
    lift = _gray(x)[..., None] * 1.5 + 0.5
    out = keep * x + (1 - keep) * np.maximum(x, lift)
    return out + layer + np.rot90(layer, k=2)


def frost(x, severity, rng):
    a, b = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    return a * x + b * frost_texture(x.shape[0], x.shape[1], rng, x.shape[2])


def fog(x, severity, rng):
    strength, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    h, w = x.shape[:2]
    top = x.max()
    out = x + strength * plasma_fractal(rng, _pow2(max(h, w, 32)), decay)[:h, :w, None]
    return out * top / (top + strength)


def brightness(x, severity, rng):
    c = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    if x.shape[2] == 1:
        return x + c
    hsv = rgb2hsv(np.clip(x, 0, 1))
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return hsv2rgb(hsv)


def contrast(x, severity, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


def elastic_transform(x, severity, rng):
    s = 32 * _scale(x)
    alpha, sigma, jitter = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][
        severity - 1
    ]
    alpha, sigma, jitter = alpha * s, sigma * s, jitter * s
    h, w, c = x.shape
    center = np.float32((h, w)) // 2
    half = min(h, w) // 3
    pts1 = np.float32([center + half, [center[0] + half, center[1] - half], center - half])
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    img = cv2.warpAffine(
        np.ascontiguousarray(x, dtype=np.float32), m, (w, h), borderMode=cv2.BORDER_REFLECT_101
    ).reshape(h, w, c)
    dx = gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = gaussian(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([gy + dy, gx + dx])
    return np.stack([map_coordinates(img[..., k], coords, order=1, mode="reflect") for k in range(c)], axis=-1)


def pixelate(x, severity, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[:2]
    img = _pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
    return _from_pil(img, x.shape[2])


def jpeg_compression(x, severity, rng):
    q = [80, 65, 58, 50, 40][severity - 1]
    buf = io.BytesIO()
    _pil(x).save(buf, "JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as img:
        return _from_pil(img.convert("L" if x.shape[2] == 1 else "RGB"), x.shape[2])


CORRUPTIONS: Registry[Corruption] = Registry(
    "corruption",
    (
        Corruption("gaussian_noise", "Gaussian noise", "noise", gaussian_noise),
        Corruption("shot_noise", "Shot noise", "noise", shot_noise),
        Corruption("impulse_noise", "Impulse noise", "noise", impulse_noise),
        Corruption("defocus_blur", "Defocus blur", "blur", defocus_blur),
        Corruption("glass_blur", "Glass blur", "blur", glass_blur),
        Corruption("motion_blur", "Motion blur", "blur", motion_blur, exact=False),
        Corruption("zoom_blur", "Zoom blur", "blur", zoom_blur),
        Corruption("snow", "Snow", "weather", snow, exact=False),
        Corruption("frost", "Frost (procedural texture)", "weather", frost, exact=False),
        Corruption("fog", "Fog", "weather", fog),
        Corruption("brightness", "Brightness", "weather", brightness),
        Corruption("contrast", "Contrast", "digital", contrast),
        Corruption("elastic_transform", "Elastic transform", "digital", elastic_transform),
        Corruption("pixelate", "Pixelate", "digital", pixelate),
        Corruption("jpeg_compression", "JPEG compression", "digital", jpeg_compression),
    ),
    ValueError,
)
NAMES = tuple(CORRUPTIONS)


def corrupt_image(x: Array, name: str, severity: int, rng: np.random.Generator) -> Array:
    """One (H, W, C) float image in [0, 1], corrupted and quantised to 8 bits like the published files."""
    out = np.asarray(CORRUPTIONS.lookup(name).fn(x.astype(np.float32), severity, rng), dtype=np.float32)
    return np.floor(np.clip(out, 0.0, 1.0) * 255.0) / 255.0


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0, keys=None) -> torch.Tensor:
    """The batch ``x`` (N, C, H, W) in [0, 1] with corruption ``name`` at ``severity`` (1 to 5).

    Image ``i`` uses a generator seeded with (seed, corruption, severity, keys[i]); ``keys`` default
    to 0 .. N-1 (pass dataset indices to make an image's corruption independent of its batch)."""
    corruption = CORRUPTIONS.lookup(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1 to 5, not {severity!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError("corrupt takes an (N, C, H, W) batch with 1 or 3 channels")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    n = len(x)
    keys = list(range(n)) if keys is None else [int(k) for k in keys]
    if len(keys) != n:
        raise ValueError(f"got {len(keys)} keys for {n} images")
    cid = NAMES.index(corruption.name)
    images = x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(images)
    for i in range(n):
        rng = np.random.default_rng([int(seed), cid, int(severity), keys[i]])
        out[i] = corrupt_image(images[i], corruption.name, severity, rng)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)


def example_grid(x: torch.Tensor, seed: int = 0, key: int = 0, names=NAMES) -> dict[str, list[torch.Tensor]]:
    """One image ``x`` (C, H, W) under every corruption and severity: name -> five (C, H, W) images."""
    batch = x[None]
    return {name: [corrupt(batch, name, s, seed, [key])[0] for s in SEVERITIES] for name in names}
