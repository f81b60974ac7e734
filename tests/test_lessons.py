"""The Lessons page and the URL state every lesson link relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advlens.attacks import ATTACKS
from advlens.data import load_dataset
from advlens.models.robustbench import get_catalog_entry, is_robustbench_name
from advlens.zoo import get_entry
from dashboard.lesson_catalog import LESSONS
from dashboard.links import PAGE_FILES as PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")


def test_twelve_complete_lessons():
    assert len(LESSONS) == 12
    assert len({lesson.slug for lesson in LESSONS}) == len(LESSONS)
    for lesson in LESSONS:
        assert lesson.goal and lesson.idea and lesson.look_for and lesson.question and lesson.answer
        assert "\\" in lesson.formula  # LaTeX, not prose
        assert lesson.steps
        for step in lesson.steps:
            assert step.page in PAGES and (ROOT / PAGES[step.page]).is_file()
            assert step.expect, f"{lesson.slug}: every link says what its page must show"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.slug)
def test_lesson_links_name_things_that_exist(lesson):
    samples = {n: set(load_dataset(n).item_names) for n in ("mnist_samples", "cifar10_samples")}
    for step in lesson.steps:
        p = step.params
        for key in ("model", "cmp_a", "cmp_b", "tr_init"):
            if key in p and is_robustbench_name(p[key]):
                assert p[key] in lesson.needs  # the Lessons page offers its download
                get_catalog_entry(p[key])  # KeyError if the catalogue does not have it
            elif key in p:
                get_entry(p[key])  # KeyError if the zoo does not have it
        for key in ("attack", "cmp_attack"):
            if key in p:
                assert p[key] in ATTACKS
        for key in ("image_sample", "cmp_image_sample"):
            if key in p:
                assert any(p[key] in titles for titles in samples.values()), p[key]
        for m in p.get("ev_models", "").split(","):
            if m:
                get_entry(m)


def test_lessons_page_keeps_the_lesson_in_the_url():
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("dashboard/lessons.py").run()
    assert not at.exception
    assert at.radio[0].value == LESSONS[0].slug
    at.radio[0].set_value(LESSONS[5].slug).run()
    assert at.query_params["topic"] in (LESSONS[5].slug, [LESSONS[5].slug])
    assert any(LESSONS[5].question in str(m.value) for m in at.markdown)


def test_a_page_reads_its_settings_from_the_link():
    at = AppTest.from_file(str(ROOT / "dashboard/attention.py"), default_timeout=240)
    at.query_params.update(
        {"att_other": "1", "model": "digits_small_cnn", "att_method": "gradcam++", "att_k": "35", "att_eps": "0.2"}
    )
    at.run()
    assert not at.exception
    assert at.selectbox(key="att_method").value == "gradcam++"
    assert at.number_input(key="att_k").value == 35.0
    assert at.text_input(key="att_eps").value == "0.2"
    # a change goes back to the link
    at.selectbox(key="att_method").set_value("saliency").run()
    assert at.query_params["att_method"] in ("saliency", ["saliency"])


def test_unreadable_link_values_fall_back_to_defaults():
    at = AppTest.from_file(str(ROOT / "dashboard/attention.py"), default_timeout=240)
    at.query_params.update({"att_other": "maybe", "model": "digits_small_cnn", "att_method": "nope", "att_thr": "7"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="att_method").value == "gradcam"
    assert at.slider(key="att_thr").value == 0.5


def test_a_new_lesson_link_resets_the_session_state():
    at = AppTest.from_file(str(ROOT / "dashboard/attention.py"), default_timeout=240)
    at.query_params.update({"att_other": "1", "model": "digits_small_cnn", "lesson": "a-1", "att_method": "saliency"})
    at.run()
    at.selectbox(key="att_method").set_value("smoothgrad").run()
    assert at.selectbox(key="att_method").value == "smoothgrad"  # the user's change holds on reruns
    at.query_params.update({"lesson": "b-1", "att_method": "gradcam++"})
    at.run()
    assert at.selectbox(key="att_method").value == "gradcam++"  # a new lesson link is read afresh


def _follow_link_script():
    import streamlit as st

    from dashboard.url_state import LESSON_TOPIC, apply_lesson_link

    apply_lesson_link()
    st.session_state.setdefault("att_k", 20)  # a page's widget default after the link
    st.write(f"topic={st.session_state.get(LESSON_TOPIC)} att_k={st.session_state.get('att_k')}")


def test_a_lesson_link_forgets_old_settings_but_remembers_its_lesson():
    """Following lesson 2's step link and then opening the Lessons page shows lesson 2, not lesson 1."""
    at = AppTest.from_function(_follow_link_script, default_timeout=60)
    at.session_state["att_k"] = 35
    at.query_params["lesson"] = f"{LESSONS[1].slug}-2"
    at.run()
    assert not at.exception
    assert at.markdown[0].value == f"topic={LESSONS[1].slug} att_k=20"


def test_the_robust_gradients_lesson_offers_the_downloads_it_needs():
    """Lesson 12 compares two RobustBench WideResNets: not downloaded here, so the lesson says so and shows
    a download button and the offline command for each; its shipped-model links still resolve."""
    lesson = LESSONS[-1]
    assert lesson.slug == "perceptually-aligned-gradients"
    assert lesson.needs == ("rb:cifar10/Linf/Standard", "rb:cifar10/Linf/Carmon2019Unlabeled")
    methods = [(s.params["model"], s.params["att_method"]) for s in lesson.steps]
    for name in lesson.needs:
        assert (name, "saliency") in methods and (name, "gradcam") in methods
    images = {s.params["image_sample"] for s in lesson.steps}
    assert len(images) == 1  # the same CIFAR-10 image throughout
    at = AppTest.from_file(str(ROOT / "dashboard/lessons.py"), default_timeout=120)
    at.query_params["topic"] = lesson.slug
    at.run()
    assert not at.exception
    assert any("needs 2 RobustBench model(s) that are not downloaded yet" in w.value for w in at.warning)
    assert [b.label for b in at.button] == [
        f"Download {name} ({size})" for name, size in zip(lesson.needs, ("146 MB", "153 MB"))
    ]
    commands = [c.value for c in at.caption if "fetch-model" in c.value]
    assert all(any(f"python -m advlens fetch-model {n} --from FILE" in c for c in commands) for n in lesson.needs)
