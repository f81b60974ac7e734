"""The Features page shows a denoising network's features before and after each block."""

from __future__ import annotations

from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from advlens.models import save_checkpoint
from advlens.paths import user_models_dir
from defenses.denoise_block import add_denoise_blocks

ROOT = Path(__file__).resolve().parents[1]


def test_features_page_shows_denoising_blocks(digits_model):
    torch.manual_seed(0)
    net = add_denoise_blocks(digits_model, stages=["conv2"], operator="mean")
    with torch.no_grad():  # a non-identity block, as after training
        for name, p in net.named_parameters():
            if "denoise" in name and p.ndim == 1:
                p.add_(0.1)
    save_checkpoint(net, user_models_dir() / "digits_denoise.safetensors")
    at = AppTest.from_file(str(ROOT / "dashboard/features.py"), default_timeout=180)
    at.query_params["model"] = "digits_denoise"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Denoising blocks of this network" in h.value for h in at.subheader)
    table = [d for d in at.dataframe if "noise ratio (block)" in d.value.columns]
    assert table and len(table[0].value) == 1
    ratio = float(table[0].value["noise ratio (block)"].iloc[0])
    assert 0.0 < ratio < 10.0
