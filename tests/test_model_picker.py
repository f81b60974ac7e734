"""The model picker groups the zoo by source, shows RobustBench's published figures, and downloads a
RobustBench entry that is not in the cache (issue 25). No network: the downloads go to a local HTTP
server (``tests/test_robustbench.py``'s stand-in for Google Drive) serving random-weight checkpoints
in RobustBench's key layout."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from advlens.cli import main
from advlens.models.robustbench import download as dl
from advlens.models.robustbench import store
from advlens.models.robustbench.catalog import CATALOG
from tests.test_robustbench import _fake_entry, _no_model_installed, _save_checkpoint, server  # noqa: F401

STANDARD = "rb:cifar10/Linf/Standard"
SMALL = "rb:cifar10/Linf/Wong2020Fast"  # a PreActResNet-18: the smallest CIFAR-10 entry (45 MB)


def _picker():
    import streamlit as st

    from dashboard.model_picker import model_picker

    name, model = model_picker()
    st.write(f"picked={name} loaded={model is not None}")


def _app(model: str | None = None) -> AppTest:
    at = AppTest.from_function(_picker, default_timeout=120)
    if model:
        at.query_params["model"] = model
    return at.run()


def _texts(at, *kinds) -> list[str]:
    return [str(el.value) for kind in kinds for el in getattr(at, kind)]


def test_the_picker_groups_models_by_source_and_shows_published_figures(tmp_path, monkeypatch):
    entry = _fake_entry(monkeypatch, "wrn_10_1_sub")
    assert main(["fetch-model", entry.name, "--from", str(_save_checkpoint(tmp_path / "c.pt", "wrn_10_1_sub"))]) == 0
    at = _app()
    assert not at.exception
    groups = at.radio(key="model_source").options
    assert [g.split(" (")[0] for g in groups] == ["all", "shipped", "RobustBench", "RobustBench"]
    assert groups[2] == "RobustBench (1)" and groups[3] == f"RobustBench (not downloaded) ({len(CATALOG) - 1})"
    box = at.selectbox(key="model")
    assert box.value == "digits_small_cnn" and "picked=digits_small_cnn loaded=True" in _texts(at, "markdown")
    labels = box.options
    first_rb = next(i for i, o in enumerate(labels) if o.startswith("RobustBench ·"))
    assert all(o.startswith("shipped ·") for o in labels[:first_rb])
    assert labels[first_rb] == f"RobustBench · {entry.name}  (wide_resnet, cifar10; published clean 50.00%, AA 40.00%)"
    assert all(o.startswith("RobustBench (not downloaded) ·") for o in labels[first_rb + 1 :])
    assert any(
        o.startswith(
            f"RobustBench (not downloaded) · {STANDARD}  (WideResNet-28-10, 146 MB; published clean 94.78%, AA 0.00%)"
        )
        for o in labels
    )
    # the cached entry loads, with the figures RobustBench publishes beside it
    box.set_value(entry.name).run()
    assert f"picked={entry.name} loaded=True" in _texts(at, "markdown")
    assert any(
        t.startswith("Published by RobustBench: clean 50.00%, AutoAttack 40.00% (Linf, eps 8/255")
        for t in _texts(at, "caption")
    )
    # the source filter narrows the list to one group
    at.radio(key="model_source").set_value("shipped").run()
    assert all(o.startswith("shipped ·") for o in at.selectbox(key="model").options)


def test_an_entry_not_downloaded_shows_its_size_and_a_download_button():
    at = _app(STANDARD)
    assert not at.exception
    assert at.selectbox(key="model").value == STANDARD and "picked=None loaded=False" in _texts(at, "markdown")
    assert any("is not downloaded yet (146 MB of weights" in t for t in _texts(at, "info"))
    captions = _texts(at, "caption")
    assert any(
        t.startswith("Published by RobustBench: clean 94.78%, AutoAttack 0.00% (Linf, eps 8/255") for t in captions
    )
    assert any(f"python -m advlens fetch-model {STANDARD} --from FILE" in t for t in captions)
    assert at.button(key="model_download").label == f"Download {STANDARD} (146 MB)"


@pytest.mark.parametrize("case", ["no network", "web page"])
def test_a_failed_download_is_one_line_and_leaves_no_model(case, server, monkeypatch):  # noqa: F811
    if case == "no network":  # nothing listens on port 1
        monkeypatch.setattr(dl, "GDRIVE_ENTRY", "http://127.0.0.1:1/uc?export=download&id={id}")
    else:  # a quota page instead of the file
        server.mode = "html"
    at = _app(STANDARD)
    at.button(key="model_download").click().run()
    assert not at.exception
    errors = _texts(at, "error")
    assert len(errors) == 1 and "\n" not in errors[0], errors
    if case == "no network":
        assert "cannot reach 127.0.0.1" in errors[0] and "no network?" in errors[0]
        assert f"`python -m advlens fetch-model {STANDARD} --from FILE`" in errors[0]
    else:
        assert "sent a web page ('Google Drive - Quota exceeded')" in errors[0]
    _no_model_installed(CATALOG[STANDARD])
    assert "picked=None loaded=False" in _texts(at, "markdown")


def test_a_download_from_a_local_server_makes_the_entry_cached(server, tmp_path):  # noqa: F811
    server.blob = _save_checkpoint(tmp_path / "wong.pt", "preact18_mu").read_bytes()
    at = _app(SMALL)
    assert any("not downloaded yet (45 MB" in t for t in _texts(at, "info"))
    at.button(key="model_download").click().run()
    assert not at.exception and not _texts(at, "error")
    assert store.is_cached(CATALOG[SMALL])
    assert f"picked={SMALL} loaded=True" in _texts(at, "markdown")
    assert any(f"Downloaded and installed **{SMALL}**" in t for t in _texts(at, "success"))
    assert at.radio(key="model_source").options[2].startswith("RobustBench (1)")
    assert at.selectbox(key="model").options[at.selectbox(key="model").index].startswith(f"RobustBench · {SMALL}")
    assert not list(store.downloads_dir().iterdir())  # the raw download is gone once converted


# ----- the Evaluate page's leaderboard row ------------------------------------------------------------
def _leaderboard():
    from advlens.jobs.store import RunStore
    from dashboard.leaderboard_section import leaderboard_section

    leaderboard_section(RunStore())


def _cifar_batches(folder, model) -> None:
    """Six random images as CIFAR-10's python test batch, the first two labelled so that the model gets
    them wrong: the suite has nothing to attack (a random-weight WideResNet resists for minutes; the
    attacks themselves are tested in test_robustbench and test_evaluation), so the test stays fast."""
    import pickle

    import numpy as np
    import torch

    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, (6, 3072), dtype=np.uint8)
    with torch.no_grad():
        pred = model(torch.from_numpy(data[:2]).view(2, 3, 32, 32).float() / 255).argmax(1).tolist()
    labels = [(pred[0] + 1) % 10, (pred[1] + 1) % 10, 2, 3, 4, 5]
    (batches / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))


def test_the_leaderboard_row_runs_the_standard_suite_and_shows_ours_beside_the_published(tmp_path, monkeypatch):
    from advlens.evaluation import jobs as eval_jobs
    from advlens.jobs.store import RunStore
    from advlens.zoo import load_model

    entry = _fake_entry(monkeypatch, "wrn_10_1_sub")
    assert main(["fetch-model", entry.name, "--from", str(_save_checkpoint(tmp_path / "c.pt", "wrn_10_1_sub"))]) == 0
    _cifar_batches(tmp_path / "cifar", load_model(entry.name, "cpu"))
    launched = []
    monkeypatch.setattr(eval_jobs, "spawn_worker", lambda run_id, command, store=None: launched.append(run_id) or 0)
    at = AppTest.from_function(_leaderboard, default_timeout=120).run()
    assert not at.exception
    assert at.selectbox(key="lb_model").value == entry.name  # the cached entry first
    # no original CIFAR-10 here: said in one line, with the JPEG copy offered as a different set
    assert any(
        t.startswith("The original CIFAR-10 test set is not available: cifar10 is not available")
        for t in _texts(at, "warning")
    )
    assert at.checkbox(key="lb_jpeg").label.endswith("(a different set)")
    assert not [b for b in at.button if b.key == "lb_start"]
    at.text_input(key="lb_root").set_value(str(tmp_path / "cifar")).run()
    at.number_input(key="lb_n").set_value(2).run()
    assert any("the original CIFAR-10 test set" in t for t in _texts(at, "caption"))
    at.button(key="lb_start").click().run()
    assert not at.exception and not _texts(at, "error"), _texts(at, "error")
    (rec,) = RunStore().list_runs(kind="evaluate")
    assert launched == [rec.id] and at.query_params["lb_run"] in (rec.id, [rec.id])
    cfg = rec.config
    assert (cfg["models"], cfg["dataset"], cfg["suite"], cfg["norm"], cfg["n"]) == (
        [entry.name],
        "cifar10",
        "standard",
        "Linf",
        2,
    )
    assert abs(cfg["eps"][0] - 8 / 255) < 1e-9
    done = eval_jobs.execute(rec.id, RunStore(), echo=False)  # as its worker would
    assert done.status == "done", done.message
    at.run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table[""]) == ["ours", "published by RobustBench"]
    assert list(table["n"]) == [2, 10000] and table["robust accuracy"][1] == "40.00%"
    assert table["clean accuracy"][0] == "0.00%" and table["robust accuracy"][0] == "0.00%"
    assert table["95% interval (Clopper-Pearson)"][0] == "[0.0, 84.2]"  # Clopper-Pearson for 0 of 2
    assert any("first 2 images" in t and "original CIFAR-10 test set" in t for t in _texts(at, "caption"))
    assert any("is inside our interval" in t for t in _texts(at, "success"))
