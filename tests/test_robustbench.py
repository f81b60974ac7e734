"""RobustBench models by name (issue 25): the catalogue, our networks against RobustBench's key
layouts and forward passes, ``fetch-model --from``, the downloader against a local HTTP server, and
``evaluate --leaderboard``. No network: checkpoints are built here in the published key layouts,
which ``fixtures/robustbench_layouts.json`` records from RobustBench's own definitions (with the
logits of its small models on fixed weights: ``fixtures/make_robustbench_layouts.py``)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import torch

from advlens.cli import main
from advlens.models import build_model
from advlens.models.robustbench import catalog, store
from advlens.models.robustbench import download as dl
from advlens.models.robustbench.catalog import CATALOG, ENTRIES, LAYOUTS, CatalogEntry
from advlens.models.robustbench.convert import NORM_KEYS, RobustBenchError, strip_prefixes

FIXTURES = Path(__file__).parent / "fixtures"
LAYOUT_FILE = json.loads((FIXTURES / "robustbench_layouts.json").read_text())["layouts"]
_spec = importlib.util.spec_from_file_location("rb_layouts", FIXTURES / "make_robustbench_layouts.py")
rb_layouts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb_layouts)


def _weights(layout: str) -> dict[str, torch.Tensor]:
    """The fixture's deterministic weights in RobustBench's exact keys (normalisation buffers set)."""
    rec = LAYOUT_FILE[layout]
    w = rb_layouts.fill([(k, tuple(s)) for k, s in rec["keys"]])
    for key in w:
        if key in NORM_KEYS:
            w[key] = torch.tensor(rec["mean" if NORM_KEYS[key] == 0 else "std"]).view(1, 3, 1, 1)
    return w


def _save_checkpoint(path: Path, layout: str, style: str = "state_dict") -> Path:
    w = _weights(layout)
    if style == "state_dict":  # {'state_dict': {'module.<key>': ...}, 'epoch': ...}, as Carmon et al.'s
        obj = {"state_dict": {"module." + k: v for k, v in w.items()}, "epoch": 3}
    elif style == "model_state_dict":
        obj = {"model_state_dict": w, "optimizer": {"lr": 0.1}}
    else:
        obj = w
    torch.save(obj, path)
    return path


def _fake_entry(monkeypatch, layout: str, **kw) -> CatalogEntry:
    """A catalogue entry for a reduced layout of the fixture (the real ones are too big for tests)."""
    rec = LAYOUT_FILE[layout]
    dataset = "imagenet" if rec["arch"] == "imagenet_resnet" else "cifar10"
    monkeypatch.setitem(LAYOUTS, layout, (rec["arch"], rec["arch_kwargs"]))
    e = CatalogEntry(
        dataset, "Linf", f"Test_{layout}", layout, (tuple(rec["mean"]), tuple(rec["std"])), 50.0, 40.0, "8/255",
        "test net", "a test entry", "", "", gdrive_id=kw.pop("gdrive_id", "testid"), input_side=rec["side"], **kw,
    )  # fmt: skip
    monkeypatch.setitem(CATALOG, e.name, e)
    monkeypatch.setattr(catalog, "ENTRIES", (*ENTRIES, e))
    return e


def _no_model_installed(entry: CatalogEntry) -> None:
    from advlens.zoo import list_models

    assert not store.is_cached(entry)
    assert entry.name not in [m.name for m in list_models()]
    folder = store.cache_dir()
    assert not list(folder.glob("*.safetensors")) if folder.is_dir() else True
    assert not list(store.downloads_dir().glob("*.pt")) if store.downloads_dir().is_dir() else True


# ----- the catalogue ------------------------------------------------------------------------------
def test_the_catalogue_states_the_published_facts_of_at_least_30_models():
    by = {
        (d, t): [e for e in ENTRIES if (e.dataset, e.threat) == (d, t)]
        for d, t in {(e.dataset, e.threat) for e in ENTRIES}
    }
    assert len(ENTRIES) >= 30 and len(by["cifar10", "Linf"]) >= 20 and len(by["cifar10", "L2"]) >= 5
    assert len(by["imagenet", "Linf"]) >= 5
    keys = {e.name for e in ENTRIES}
    for needed in ("Wong2020Fast", "Carmon2019Unlabeled", "Rice2020Overfitting", "Standard", "Gowal2020Uncovering_70_16",
                   "Gowal2020Uncovering_28_10_extra", "Rebuffi2021Fixing_70_16_cutmix_extra", "Rebuffi2021Fixing_28_10_cutmix_ddpm"):  # fmt: skip
        assert f"rb:cifar10/Linf/{needed}" in keys
    for needed in ("Salman2020Do_R50", "Engstrom2019Robustness", "Wong2020Fast", "Standard_R50"):
        assert f"rb:imagenet/Linf/{needed}" in keys
    carmon = CATALOG["rb:cifar10/Linf/Carmon2019Unlabeled"]
    assert (carmon.clean, carmon.autoattack, carmon.eps, carmon.architecture) == (
        89.69,
        59.53,
        "8/255",
        "WideResNet-28-10",
    )
    assert carmon.gdrive_id == "15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ" and "Unlabeled Data" in carmon.paper
    assert CATALOG["rb:imagenet/Linf/Standard_R50"].url.startswith("https://")
    assert CATALOG["rb:imagenet/Linf/Wong2020Fast"].input_size == (3, 288, 288)
    for e in ENTRIES:
        assert 0 <= e.autoattack <= e.clean <= 100 and (e.gdrive_id or e.url) and e.paper and e.layout in LAYOUTS
        assert (
            e.eps_value == pytest.approx(8 / 255, abs=1e-3) if e.threat == "Linf" and e.dataset == "cifar10" else True
        )


def test_every_catalogued_architecture_has_robustbench_exact_key_layout():
    """Our network for each layout, built on the meta device, has exactly RobustBench's keys and
    shapes once the prefixes and normalisation buffers that our loader removes are removed."""
    used = {e.layout for e in ENTRIES}
    assert used <= set(LAYOUT_FILE)
    assert {LAYOUTS[u][0] for u in used} == {
        "wide_resnet",
        "dm_wide_resnet",
        "rb_preact_resnet18",
        "cifar_resnet",
        "imagenet_resnet",
    }
    for layout in sorted(used):
        rec = LAYOUT_FILE[layout]
        arch, kwargs = LAYOUTS[layout]
        assert (arch, kwargs) == (rec["arch"], rec["arch_kwargs"]), layout
        theirs = {k: tuple(s) for k, s in strip_prefixes(dict(rec["keys"])).items() if k not in NORM_KEYS}
        with torch.device("meta"):
            size = (3, 224, 224) if arch == "imagenet_resnet" else (3, 32, 32)
            net = build_model(arch, arch_kwargs=kwargs, input_size=size, **({"class_names": [str(i) for i in range(1000)]} if arch == "imagenet_resnet" else {})).net  # fmt: skip
        ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        assert ours == theirs, f"{layout}: {sorted(set(ours) ^ set(theirs))[:5]}"


def test_our_networks_compute_what_robustbench_s_compute():
    """Logits on fixed weights and a fixed input equal those RobustBench's own classes gave."""
    from advlens.models.robustbench.convert import to_model

    checked = 0
    for layout, rec in LAYOUT_FILE.items():
        if "logits" not in rec or layout in FETCHED or layout in ("cifar_resnet50_mu", "tv_resnet50", "wrn_10_1_sub"):
            continue  # the fetch test checks the first ones; the others: the same blocks at twice the cost
        e = CatalogEntry("imagenet" if rec["arch"] == "imagenet_resnet" else "cifar10", "Linf", "t", "wrn_28_10",
                         (tuple(rec["mean"]), tuple(rec["std"])), 0, 0, "8/255", "", "", "", "", input_side=rec["side"])  # fmt: skip
        object.__setattr__(e, "layout", layout)
        LAYOUTS.setdefault(layout, (rec["arch"], rec["arch_kwargs"]))
        model = to_model(_weights(layout), e, layout)
        with torch.no_grad():
            out = model(rb_layouts.probe_input(rec["side"]))[:, :10]
        assert torch.allclose(out, torch.tensor(rec["logits"]), atol=2e-4, rtol=1e-3), layout
        assert model.default_cam_layer().startswith("net.")
        checked += 1
    assert checked == 2


# ----- fetch-model --from, then the model everywhere ------------------------------------------------
FETCHED = ("wrn_10_2_sub", "dm_10_2", "preact18_mu", "tv_resnet18")  # one per architecture family


@pytest.mark.parametrize("layout", FETCHED)
def test_fetch_model_from_file_then_attack_and_gradcam(layout, tmp_path, monkeypatch, capsys):
    from advlens.attacks import run_attack
    from advlens.attribution.cam import gradcam
    from advlens.zoo import get_entry, list_models, load_model

    if layout == "preact18_mu":  # the real catalogue entry, in its published shape
        entry = CATALOG["rb:cifar10/Linf/Wong2020Fast"]
    else:
        entry = _fake_entry(monkeypatch, layout)
    path = _save_checkpoint(tmp_path / "published.pt", layout, "state_dict" if layout != "dm_10_2" else "plain")
    assert main(["fetch-model", entry.name, "--from", str(path)]) == 0
    assert "installed" in capsys.readouterr().out
    listed = {m.name: m for m in list_models()}
    assert listed[entry.name].source == "robustbench" and listed[entry.name].arch == entry.arch
    model = load_model(entry.name, "cpu")
    assert model.checkpoint_meta["robustbench"]["sha256"] == store.sha256_of(path)
    x = rb_layouts.probe_input(entry.input_size[1])
    with torch.no_grad():  # RobustBench's own class gave these logits on the same weights and input
        assert torch.allclose(model(x)[:, :10], torch.tensor(LAYOUT_FILE[layout]["logits"]), atol=2e-4, rtol=1e-3)
    x = x[:1]
    y = model(x).argmax(1)
    res = run_attack(model, x, y, "pgd", eps=8 / 255, steps=2)
    assert (res.x_adv - x).abs().max() <= 8 / 255 + 1e-6
    cam = gradcam(model, x, y)
    assert cam.shape == (1, *entry.input_size[1:]) and torch.isfinite(cam).all()
    if layout == "preact18_mu":  # an input-transform chain on a RobustBench name
        defended = load_model(entry.name + "+jpeg75", "cpu")
        assert get_entry(entry.name + "+jpeg75").arch == entry.arch and defended(x).shape == (1, 10)
        assert main(["models", "--robustbench"]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith(entry.name + " "))
        assert "83.34%" in line and "43.21%" in line and "cached" in line and "not" not in line


def test_a_wrong_checkpoint_is_one_line_and_installs_nothing(tmp_path, monkeypatch, capsys):
    entry = CATALOG["rb:cifar10/Linf/Wong2020Fast"]
    wrong = _save_checkpoint(tmp_path / "wrong.pt", "cifar_resnet18", "model_state_dict")
    assert main(["fetch-model", entry.name, "--from", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not fit" in err and "\n" not in err
    _no_model_installed(entry)
    assert main(["attack", "--model", entry.name, "--dataset", "cifar10_samples", "--index", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not downloaded" in err and f"fetch-model {entry.name} --from FILE" in err and "\n" not in err


# ----- the downloader, against a local HTTP server --------------------------------------------------
class _Server:
    """A local stand-in for Google Drive: ``/uc`` answers per ``mode``; ``/download`` is the file."""

    def __init__(self):
        self.blob, self.mode, self.ranges, self.cut_once = b"", "direct", [], False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urlsplit(self.path)
                q = parse_qs(url.query)
                if url.path == "/uc" and outer.mode == "form" and "confirm" not in q:
                    form = (
                        f'<html><head><title>Google Drive - Virus scan warning</title></head><body><form id="download-form" '
                        f'action="http://127.0.0.1:{outer.port}/download" method="get">'
                        f'<input type="hidden" name="id" value="{q["id"][0]}"><input type="hidden" name="export" value="download">'
                        '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1"></form></body></html>'
                    )  # fmt: skip
                    return self._send(200, form.encode(), "text/html; charset=utf-8")
                if url.path == "/uc" and outer.mode == "cookie" and "confirm" not in q:
                    self.send_response(200)
                    self.send_header("Set-Cookie", "download_warning_12=TOKEN7; Path=/")
                    page = b"<!DOCTYPE html><html><body>confirm</body></html>"
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    return self.wfile.write(page)
                if url.path == "/uc" and outer.mode == "html":
                    page = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"
                    return self._send(200, page, "text/html")
                if outer.mode == "cookie" and q.get("confirm") != ["TOKEN7"]:
                    return self._send(403, b"no", "text/plain")
                if outer.mode == "form" and (url.path != "/download" or q.get("uuid") != ["u-1"]):
                    return self._send(403, b"no", "text/plain")
                blob, start = outer.blob, 0
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                else:
                    self.send_response(200)
                body = blob[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_once:  # send half, then drop the connection
                    outer.cut_once = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def server(monkeypatch):
    s = _Server()
    monkeypatch.setattr(dl, "GDRIVE_ENTRY", f"http://127.0.0.1:{s.port}/uc?export=download&id={{id}}")
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.mark.parametrize("mode", ["form", "cookie"])
def test_download_follows_google_drive_confirmation_with_progress(mode, server, tmp_path, monkeypatch):
    from advlens.zoo import load_model

    entry = _fake_entry(monkeypatch, "wrn_10_2_sub")
    server.blob, server.mode = _save_checkpoint(tmp_path / "c.pt", "wrn_10_2_sub").read_bytes(), mode
    seen = []
    path = store.fetch(entry.name, progress=lambda d, t, eta: seen.append((d, t, eta)), timeout=5)
    assert path.is_file() and seen[-1][:2] == (len(server.blob), len(server.blob))
    assert store.recorded_checksums()[entry.name] == store.sha256_of(tmp_path / "c.pt")
    assert load_model(entry.name, "cpu")(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert not list(store.downloads_dir().iterdir())  # the raw download is deleted once converted
    assert "ETA" in dl.format_progress(50, 100, 3.2) and "50.0%" in dl.format_progress(50, 100, 3.2)


def test_a_cut_download_resumes_with_a_range_request(server, tmp_path, monkeypatch):
    entry = _fake_entry(monkeypatch, "wrn_10_2_sub")
    server.blob, server.cut_once = _save_checkpoint(tmp_path / "c.pt", "wrn_10_2_sub").read_bytes(), True
    with pytest.raises(RobustBenchError, match="run the same command again to resume") as exc:
        store.fetch(entry.name, timeout=5)
    assert "\n" not in str(exc.value)
    _no_model_installed(entry)
    part = next(store.downloads_dir().glob("*.part"))
    assert 0 < part.stat().st_size < len(server.blob)
    store.fetch(entry.name, timeout=5)
    assert server.ranges[-1] == f"bytes={len(server.blob) // 2}-" and store.is_cached(entry)


def _evil(marker: Path):
    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return Evil()


@pytest.mark.parametrize("case", ["checksum", "truncated", "oversize", "html", "code", "code_raw_pickle", "offline"])
def test_every_download_failure_is_one_line_and_leaves_no_model(case, server, tmp_path, monkeypatch, capsys):
    entry = _fake_entry(monkeypatch, "wrn_10_2_sub")
    good = _save_checkpoint(tmp_path / "c.pt", "wrn_10_2_sub").read_bytes()
    marker = tmp_path / "executed"
    server.blob = good
    if case == "checksum":  # a hash recorded at the first install, and another file now
        store.cache_dir().mkdir(parents=True)
        (store.cache_dir() / "checksums.json").write_text(json.dumps({entry.name: "0" * 64}))
        expect = "differs from"
    elif case == "truncated":  # the server sends a torn file as if it were whole
        server.blob, expect = good[: len(good) // 2], "not a readable PyTorch checkpoint"
    elif case == "oversize":
        monkeypatch.setattr(store, "MAX_FILE_BYTES", len(good) // 3)
        expect = "more than"
    elif case == "html":
        server.mode, expect = "html", "web page"
    elif case == "code":
        torch.save({"state_dict": dict(_weights("wrn_10_2_sub")), "hook": _evil(marker)}, tmp_path / "evil.pt")
        server.blob, expect = (tmp_path / "evil.pt").read_bytes(), "would run code"
    elif case == "code_raw_pickle":
        server.blob, expect = pickle.dumps({"state_dict": _evil(marker)}, protocol=2), "would run code"
    else:  # nothing listens on the port: what a machine without network sees
        monkeypatch.setattr(dl, "GDRIVE_ENTRY", "http://127.0.0.1:9/uc?export=download&id={id}")
        expect = f"fetch-model {entry.name} --from FILE"
    assert main(["fetch-model", entry.name, "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and expect in err, err
    assert not marker.exists()
    _no_model_installed(entry)


# ----- evaluate --leaderboard ------------------------------------------------------------------------
def test_evaluate_leaderboard_prints_ours_beside_the_published_figure(tmp_path, monkeypatch, capsys):
    from advlens.zoo import load_model

    entry = _fake_entry(monkeypatch, "wrn_10_1_sub")
    assert main(["fetch-model", entry.name, "--from", str(_save_checkpoint(tmp_path / "c.pt", "wrn_10_1_sub"))]) == 0
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, (6, 3072), dtype=np.uint8)
    with torch.no_grad():
        pred = load_model(entry.name, "cpu")(torch.from_numpy(data[:1]).view(1, 3, 32, 32).float() / 255).argmax(1)
    labels = [int(pred), (int(pred) + 1) % 10, 2, 3, 4, 5]  # the first image right (attacked), the second wrong
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))
    capsys.readouterr()
    args = ["evaluate", "--leaderboard", "--model", entry.name, "--root", str(tmp_path / "cifar"), "--n", "2"]
    assert main([*args, "--suite", "quick", "--no-checklist"]) == 0
    out = capsys.readouterr().out
    assert "original CIFAR-10 test set" in out and "published AutoAttack 40.00%" in out and "n = 2" in out
    assert "clean 50.00%" in out
    assert main(["evaluate", "--leaderboard", "--model", "rb:imagenet/Linf/Standard_R50", "--root", "x"]) == 2


# ----- the Attack Lab's CPU preset on a big model ----------------------------------------------------
def test_the_cpu_preset_is_lowered_to_keep_a_wideresnet_under_30_s(monkeypatch):
    """A WideResNet-28-10 takes about 0.6 s per forward+backward pass on one core (bench/RESULTS.md): the
    presets' worst case then passes 30 s, so they are lowered, and the Attack Lab says so."""
    from streamlit.testing.v1 import AppTest

    from advlens import attack_cost
    from advlens.attack_cost import fitted_preset, worst_case_passes
    from advlens.attacks import ATTACKS

    for name in ("cw", "deepfool", "hopskipjump", "hopskipjump_linf"):
        cls = ATTACKS[name]
        assert fitted_preset(cls, None, per_pass=0.005) == (cls.CPU_PRESET, "")  # a small model: as it was
        preset, note = fitted_preset(cls, None, per_pass=0.6)
        full = {p.name: p.default for p in cls.params()} | preset
        if name == "deepfool":  # 10 steps x (3 candidates + a forward): 21 s, the preset fits as it is
            assert (preset, note) == (cls.CPU_PRESET, "")
            continue
        assert preset["steps"] < cls.CPU_PRESET["steps"] and set(cls.CPU_PRESET) <= set(preset)
        assert note.startswith("This model takes 0.60 s per forward+backward pass")
        assert worst_case_passes(name, full) * 0.6 <= 30 and note.endswith("lowered to stay under 30 s.")
        if name != "cw":  # label-only: the start's noise draws (its worst case) are lowered first
            assert preset["start_draws"] == 50 and preset["steps"] == 1
    assert worst_case_passes("cw", ATTACKS["cw"].CPU_PRESET) * 0.6 > 30  # the usual preset: 61 s
    monkeypatch.setattr(attack_cost, "pass_seconds", lambda model: 0.6)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard/attack_lab.py"), default_timeout=120)
    at.query_params.update({"model": "digits_small_cnn", "attack": "cw", "auto": "0"})
    at.run()
    assert not at.exception
    preset, note = fitted_preset(ATTACKS["cw"], None, per_pass=0.6)
    button = at.button(key="atk_preset_cw")
    assert button.label == f"CPU-friendly preset ({', '.join(f'{k}={v}' for k, v in preset.items())})"
    assert note in [c.value for c in at.caption]
    button.click().run()
    assert at.number_input(key="atk_cw_steps").value == preset["steps"]


def test_timing_a_pass_leaves_a_model_in_train_mode_as_it_was():
    """``pass_seconds`` runs on the model every session shares: in eval mode and under its lock, on its
    device, and it leaves the mode, the BatchNorm statistics and the weights' gradients as they were."""
    from advlens.attack_cost import pass_seconds
    from advlens.models import Classifier, ModelSpec

    bn = torch.nn.BatchNorm2d
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), bn(2), bn(2), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    model = Classifier(net, ModelSpec("timed", (1, 8, 8), ("a", "b", "c"), (0.0,), (1.0,))).train()
    model.net[2].eval()  # a frozen BatchNorm inside a model in train mode
    stats = [model.net[i].running_mean.clone() for i in (1, 2)]
    seconds = pass_seconds(model)
    assert seconds > 0 and pass_seconds(model) == seconds  # measured once per model
    assert model.training and model.net[1].training and not model.net[2].training
    for i, before in zip((1, 2), stats):  # an eval-mode pass: no BatchNorm statistic moved
        torch.testing.assert_close(model.net[i].running_mean, before, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
