"""The Compare page (AppTest): a freshly trained run is offered as the defended model and both
models are attacked on the same image, side by side."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from advlens.training import jobs
from advlens.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_compare_attacks_a_standard_and_a_trained_model_side_by_side():
    cfg = TrainConfig(
        objective="pgd_at",
        objective_params={"steps": 2, "alpha": 0.1},
        dataset="digits",
        eps=0.3,
        epochs=1,
        max_steps=3,
        limit_train=128,
        val_size=32,
        eval_size=32,
        eval_steps=1,
        test_eval=False,
    )
    rec = jobs.execute(jobs.create(cfg).id, echo=False)
    assert rec.status == "done"
    at = AppTest.from_file(str(ROOT / "dashboard/compare.py"), default_timeout=180)
    at.query_params["cmp_a"] = "digits_small_cnn"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cmp_b").value == rec.zoo_name  # the trained run is the default defended model
    at.selectbox(key="cmp_attack").set_value("fgsm").run()
    eps = next(n for n in at.text_input if n.key.startswith("cmp_fgsm_") and n.key.endswith("_eps"))
    assert eps.value == "0.3"  # 0.3: the defended model's training budget
    at.button(key="cmp_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "digits_small_cnn" in text and rec.zoo_name in text
    assert len(at.get("plotly_chart")) == 4  # clean and adversarial top-5 for each model
    assert any("Transfer" in c.value for c in at.caption)
    assert len(at.get("image")) >= 8  # images and Grad-CAM overlays, clean and adversarial, both models
