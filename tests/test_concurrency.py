"""Engine calls on one shared model from several threads (the app caches one model for every
session): no call fails, and the model's parameters, buffers, modes and hooks end as they began."""

from __future__ import annotations

import threading

import torch

from advlens.attacks import run_attack
from advlens.attribution import compute_map
from advlens.attribution.features import layer_features
from advlens.predict import predict_proba
from advlens.zoo import load_model

THREADS, CALLS_PER_THREAD = 4, 50  # 200 calls in all


def snapshot(model: torch.nn.Module) -> dict:
    return {
        "params": {k: (v.detach().clone(), v.requires_grad, v.grad is None) for k, v in model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "modes": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for k, m in model.named_modules()
        },
    }


def same(a: dict, b: dict) -> bool:
    if a["modes"] != b["modes"] or a["hooks"] != b["hooks"]:
        return False
    for k, (t, req, nograd) in a["params"].items():
        u, req2, nograd2 = b["params"][k]
        if not torch.equal(t, u) or req != req2 or nograd != nograd2:
            return False
    return all(torch.equal(v, b["buffers"][k]) for k, v in a["buffers"].items())


def test_engine_calls_on_one_model_from_four_threads(digits_test):
    model = load_model("digits_small_cnn", device="cpu")
    model.train()  # a state the engine must restore, not assume
    model.net.fc1.eval()  # and a mixed one
    x, y = digits_test.batch(range(4))
    layer = model.default_cam_layer()
    before = snapshot(model)
    reference = compute_map(model, x, "gradcam", target=y)

    def call(i: int):
        kind = i % 5
        if kind == 0:
            return run_attack(model, x, y, "pgd", eps=0.1, steps=2).x_adv
        if kind == 1:
            return compute_map(model, x, "gradcam", target=y)
        if kind == 2:
            return compute_map(model, x, "gradcam++", target=y)
        if kind == 3:
            return layer_features(model, x, [layer])[layer]
        return predict_proba(model, x)

    failures: list[str] = []
    results: list[torch.Tensor] = []
    lock = threading.Lock()

    def worker(t: int):
        for j in range(CALLS_PER_THREAD):
            i = t * CALLS_PER_THREAD + j
            try:
                out = call(i)
                with lock:
                    if i % 5 == 1:
                        results.append(out)
            except Exception as exc:  # noqa: BLE001 - every failure is reported below
                with lock:
                    failures.append(f"call {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert failures == [], failures[:5]
    assert len(results) == THREADS * CALLS_PER_THREAD // 5
    # Every Grad-CAM computed under contention equals the one computed alone (same math, same model).
    assert all(torch.allclose(r, reference, atol=1e-5) for r in results)
    assert same(before, snapshot(model))
