"""Tried as a new user would (issue 25): export a network of your own with ``torch.export``, import it
in the browser through the Home page's import box, and compare its Grad-CAM with a shipped model's on
the Compare page and on the Attention page.

The network is defined here only (advlens never sees its class) and exported the plain way, at batch
1 with no dynamic shapes, as PyTorch's tutorial does; its class names and normalisation come from the
JSON sidecar uploaded beside it. The Compare page then attacks it and the shipped
``cifar10_resnet20`` on the same CIFAR-10 image and draws both models' clean and adversarial
Grad-CAM; the Attention page shows its maps with the shipped model's beside them ("Compare with another
model on the same image"). Playwright drives Debian's chromium, skipped as in ``test_browser``.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import torch
from torch import nn

from tests.test_browser import CHROMIUM, page, server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NAME = "my_cifar_net"


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def upload(pg, index: int, path) -> None:
    """Put ``path`` in the import box's ``index``-th uploader and wait until it has reached the server: a
    file chip's delete button reads "Cancel upload of NAME" while it uploads and "Remove NAME" once done.
    A file the uploader dropped (seen once in CI, on a busy machine) is given again, as a user would."""
    box = pg.locator("[data-testid='stFileUploaderDropzoneInput']").nth(index)
    for _ in range(3):
        box.set_input_files(str(path))
        try:
            pg.get_by_label(f"Remove {path.name}").wait_for(timeout=30_000)
            return
        except Exception:
            continue
    pytest.fail(f"{path.name} did not upload:\n" + pg.locator("body").inner_text()[-3000:])


IMAGES = "Array.from(document.querySelectorAll('[data-testid=stImage] img'))"


def assert_images_drawn(pg) -> None:
    """Every image on the page loads. The browser fetches an image after its element appears (and a rerun
    may replace one while it is fetched), so wait for all of them before naming any that stayed broken."""
    try:
        pg.wait_for_function(f"{IMAGES}.every(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
    except Exception:
        broken = pg.evaluate(f"{IMAGES}.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        pytest.fail(f"images that did not load: {broken}")


def test_an_exported_network_imported_in_the_browser_shows_its_gradcam_beside_a_shipped_one(server, page, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    program = torch.export.export(MyNet().eval(), (torch.rand(1, 3, 32, 32),))  # batch 1, as the tutorials do
    weights = tmp_path / f"{NAME}.pt2"
    torch.export.save(program, str(weights))
    sidecar = tmp_path / f"{NAME}.json"
    sidecar.write_text(
        json.dumps({"class_names": CIFAR, "dataset": "cifar10", "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]})
    )

    page.goto(server, wait_until="domcontentloaded")
    # Let the Home page's first run finish (its gallery is drawn last), then upload as a user would:
    # one file, and the next once the first shows as uploaded.
    page.wait_for_function(
        "['Egyptian cat', 'espresso'].every(t => document.body.innerText.includes(t))", timeout=240_000
    )
    page.get_by_text("Load your own checkpoint").click(timeout=90_000)
    upload(page, 0, weights)
    page.get_by_role("button", name="Import checkpoint").wait_for(timeout=90_000)  # the rerun has seen it
    page.get_by_text("No metadata yet").wait_for(timeout=60_000)  # a program alone would get numbered classes
    upload(page, 1, sidecar)
    page.get_by_text("No metadata yet").wait_for(state="detached", timeout=60_000)
    page.get_by_role("button", name="Import checkpoint").click(timeout=60_000)
    try:
        page.get_by_text(f"Imported {NAME} (torch_export, cifar10)").wait_for(timeout=120_000)
    except Exception:
        pytest.fail("the import did not finish:\n" + page.locator("body").inner_text()[-4000:])

    query = {
        "cmp_a": NAME,
        "cmp_b": "cifar10_resnet20",
        "cmp_image_src": "Sample",
        "cmp_image_sample": "CIFAR-10 cat (test #3000)",
    }
    page.goto(f"{server}/compare?{urlencode(query)}", wait_until="domcontentloaded")
    page.get_by_role("button", name="Attack both").click(timeout=90_000)
    try:
        page.wait_for_function(
            "document.body.innerText.split(', adversarial (predicted class)').length - 1 >= 2", timeout=90_000
        )
    except Exception:
        pytest.fail("the two models' Grad-CAM maps were not drawn:\n" + page.locator("body").inner_text()[-6000:])
    body = page.locator("body").inner_text()
    # one clean and one adversarial map per model, each at its own default layer
    for layer in ("net.features.3", "net.layer3"):  # ours (its last conv), ResNet-20's last stage
        assert f"Grad-CAM at {layer}, clean (true class)" in body
        assert f"Grad-CAM at {layer}, adversarial (predicted class)" in body
    assert f"Standard: {NAME}" in body and "Defended: cifar10_resnet20" in body
    assert "No attention map" not in body and "Traceback" not in body
    maps = page.locator("[data-testid='stImage'] img")
    assert maps.count() >= 8  # per model: clean, adversarial, and their two Grad-CAM overlays
    assert_images_drawn(page)
    assert page.locator("[data-testid='stException']").count() == 0

    # The Attention page: our network attacked and mapped, the shipped model's maps beside them.
    query = {
        "model": NAME,
        "image_src": "Sample",
        "image_sample": "CIFAR-10 cat (test #3000)",
        "att_second_on": "1",
        "att_second": "cifar10_resnet20",
    }
    page.goto(f"{server}/attention?{urlencode(query)}", wait_until="domcontentloaded")
    drawn = (  # the page's two maps and the second model's two, each with its caption
        "['clean · Grad-CAM', 'adversarial · Grad-CAM'].every(t => document.body.innerText.split(t).length"
        f" - 1 >= 2) && document.body.innerText.includes('the image was attacked on {NAME}')"
    )
    try:
        page.wait_for_function(drawn, timeout=120_000)
    except Exception:
        pytest.fail("the second model's maps were not drawn:\n" + page.locator("body").inner_text()[-6000:])
    body = page.locator("body").inner_text()
    assert "cifar10_resnet20: clean" in body  # the second model's predictions above its maps
    assert "clean · Grad-CAM at net.layer3 for" in body  # at ResNet-20's own default layer
    assert "No attention map" not in body and "Traceback" not in body
    assert_images_drawn(page)
    assert page.locator("[data-testid='stException']").count() == 0
