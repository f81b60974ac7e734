"""A compact supervised training loop, used to build the shipped default digits model.

``python -m advlens build-default-model`` re-creates ``assets/models/digits_small_cnn`` with the
recipe stored in its metadata.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..data import ImageDataset
from ..models import Classifier


@torch.no_grad()
def accuracy(model: Classifier, data: ImageDataset, batch_size: int = 512) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.batch(range(start, min(start + batch_size, len(data))))
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    return correct / max(1, len(data))


def fit_standard(model: Classifier, train: ImageDataset, epochs: int = 30, batch_size: int = 64,
                 lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0, shift: int = 2,
                 log=print) -> dict:
    """Adam on cross-entropy with random translations of up to ``shift`` pixels."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-len(train) // batch_size))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        total, n = 0.0, 0
        for start in range(0, len(train), batch_size):
            x, y = train.batch(perm[start:start + batch_size])
            if shift:
                pad = F.pad(x, (shift,) * 4)
                dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=gen).tolist()
                x = pad[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            n += len(y)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f} ({time.time() - t0:.1f}s)")
    model.eval()
    return {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
            "optimizer": "adam", "schedule": "one-cycle", "augment": f"random shift <= {shift}px",
            "seconds": round(time.time() - t0, 1)}
