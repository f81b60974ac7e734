"""Randomized smoothing: predict and certify (Cohen, Rosenfeld and Kolter 2019, arXiv 1902.02918).

The smoothed classifier of a base classifier f at noise level sigma is

    g(x) = argmax_c P(f(x + e) = c),   e ~ N(0, sigma^2 I).

If the top class c_A has probability at least p_A and every other class at most p_B = 1 - p_A,
g is constant on the L2 ball of radius R = sigma * Phi^-1(p_A) around x. Both procedures below are
the paper's (and locuslab/smoothing's), with its defaults:

- :func:`certify`: n0 = 100 noisy samples choose c_A; n = 10,000 more (the paper's 100,000 is the
  full run) estimate p_A by its one-sided Clopper-Pearson lower bound at level alpha = 0.001
  (``scipy.stats.beta.ppf(alpha, k, n - k + 1)``). If that bound exceeds 1/2 the certified radius
  is sigma * Phi^-1(p_A_lower); otherwise the procedure abstains.
- :func:`predict`: n samples; return the top class only if a two-sided binomial test
  (``scipy.stats.binomtest``; the old ``scipy.stats.binom_test`` no longer exists) separates the top
  two counts at level alpha, else abstain. Abstentions are -1.

The samples run in batches of noisy copies of one image (no gradient), so certifying costs the
n0 + n forward passes of the base model and little else; ``progress(done, total)`` is called after
each batch and ``should_stop()`` polled, since a certificate is thousands of forward passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .models.modes import eval_mode, model_device

ABSTAIN = -1
ELEMENTS_PER_BATCH = 2**25  # noisy copies per batch: at most this many input values (128 MB of float32)


class Stopped(RuntimeError):
    """Raised when ``should_stop()`` asked to stop a certification; ``partial`` holds the
    certificates :func:`certify_batch` finished before it."""

    partial: list = []


@dataclass
class Certificate:
    prediction: int  # the certified class, or ABSTAIN
    radius: float  # the certified L2 radius (0.0 when abstaining)
    p_lower: float  # the lower confidence bound on p_A
    count: int  # samples of the top class among n
    n: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def default_batch(x: torch.Tensor, cap: int = 1000) -> int:
    return max(1, min(cap, ELEMENTS_PER_BATCH // max(1, x[0].numel())))


def check_settings(sigma: float, n: int, n0: int = 1, alpha: float = 0.001) -> None:
    if not (isinstance(sigma, (int, float)) and 0 < sigma <= 10):
        raise ValueError(f"sigma must be a noise level in (0, 10], not {sigma!r}")
    for name, value, hi in (("n", n, 10_000_000), ("n0", n0, 1_000_000)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ValueError(f"{name} must be a whole number in [1, {hi:,}], not {value!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), not {alpha!r}")


def sample_counts(
    model,
    x: torch.Tensor,
    sigma: float,
    num: int,
    batch_size: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """How often ``model`` predicts each class on ``num`` copies of ``x`` (C, H, W) with N(0, sigma^2) noise."""
    device = model_device(model)
    x = x.detach().to(device=device, dtype=torch.float32)
    batch_size = batch_size or default_batch(x[None])
    counts = torch.zeros(model.num_classes, dtype=torch.long, device=device)
    done = 0
    with torch.no_grad(), eval_mode(model):
        while done < num:
            b = min(batch_size, num - done)
            noisy = x.expand(b, *x.shape) + sigma * torch.randn(b, *x.shape, device=device)
            counts += torch.bincount(model(noisy).argmax(1), minlength=model.num_classes)
            done += b
            if progress is not None:
                progress(done, num)
            if should_stop is not None and done < num and should_stop():
                raise Stopped("certification stopped")
    return counts.cpu()


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion k / n."""
    from scipy.stats import beta  # imported when used: scipy.stats costs ~0.4 s to import

    return float(beta.ppf(alpha, k, n - k + 1)) if k > 0 else 0.0


def certify(
    model,
    x: torch.Tensor,
    sigma: float,
    n0: int = 100,
    n: int = 10_000,
    alpha: float = 0.001,
    batch_size: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Certificate:
    """CERTIFY of Cohen et al. for one image ``x`` (C, H, W) in [0, 1]."""
    check_settings(sigma, n, n0, alpha)
    t0 = time.perf_counter()
    total = n0 + n

    def part(offset):
        return None if progress is None else (lambda done, _: progress(offset + done, total))

    top = int(sample_counts(model, x, sigma, n0, batch_size, part(0), should_stop).argmax())
    counts = sample_counts(model, x, sigma, n, batch_size, part(n0), should_stop)
    k = int(counts[top])
    p_lower = lower_confidence_bound(k, n, alpha)
    seconds = time.perf_counter() - t0
    if p_lower < 0.5:
        return Certificate(ABSTAIN, 0.0, p_lower, k, n, seconds)
    from scipy.stats import norm

    return Certificate(top, float(sigma * norm.ppf(p_lower)), p_lower, k, n, seconds)


def predict(
    model, x: torch.Tensor, sigma: float, n: int = 1000, alpha: float = 0.001, batch_size: int | None = None
) -> int:
    """PREDICT of Cohen et al.: the smoothed classifier's class at ``x`` (C, H, W), or ABSTAIN."""
    check_settings(sigma, n, 1, alpha)
    counts = sample_counts(model, x, sigma, n, batch_size)
    top2 = counts.topk(2)
    n_a, n_b = int(top2.values[0]), int(top2.values[1])
    from scipy.stats import binomtest

    if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2.indices[0])


def certified_accuracy(certificates: list[Certificate], labels, radii) -> list[float]:
    """The fraction of images certified correct with a radius of at least r, for each r in ``radii``."""
    labels = [int(v) for v in labels]
    total = max(1, len(certificates))
    return [sum(c.prediction == y and c.radius >= r for c, y in zip(certificates, labels)) / total for r in radii]


def certify_batch(
    model,
    x: torch.Tensor,
    sigma: float,
    n0: int = 100,
    n: int = 10_000,
    alpha: float = 0.001,
    progress: Callable[[int, int], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Certificate]:
    """:func:`certify` for each image of ``x`` (N, C, H, W); ``progress`` counts forward passes."""
    check_settings(sigma, n, n0, alpha)
    per = n0 + n
    out: list[Certificate] = []
    try:
        for i in range(len(x)):
            step = None if progress is None else (lambda done, _, i=i: progress(i * per + done, len(x) * per))
            out.append(certify(model, x[i], sigma, n0, n, alpha, progress=step, should_stop=should_stop))
    except Stopped as exc:
        exc.partial = out  # the certificates finished before the stop
        raise
    return out
