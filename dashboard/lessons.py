"""Lessons: guided experiments, each a set of links that open the pages in a prepared state.

The content is in :mod:`dashboard.lesson_catalog`. A link carries the page's whole state in its URL
plus ``lesson=<slug>-<step>``; the page then forgets the session's earlier settings and reads them
from the link (:func:`dashboard.url_state.apply_lesson_link`). The lesson shown here is itself in
the URL (``?topic=<slug>``).
"""

from __future__ import annotations

import streamlit as st

from dashboard.lesson_catalog import LESSONS, Lesson, lesson_by_slug
from dashboard.links import page_link
from dashboard.url_state import LESSON_TOPIC, forget_lesson_link, synced
from dashboard.widgets import page_setup


def step_links(lesson: Lesson) -> None:
    for i, step in enumerate(lesson.steps, start=1):
        page_link(
            step.page,
            f"{i}. {step.label}",
            {**step.params, "lesson": f"{lesson.slug}-{i}"},
            icon=":material/open_in_new:",
        )


def needed_models(lesson: Lesson) -> None:
    """The RobustBench models a lesson downloads: one line when they are all here; otherwise which are
    missing, each with its download button (and the command for a file obtained elsewhere)."""
    if not lesson.needs:
        return
    from advlens.models.robustbench import get_catalog_entry, is_cached
    from dashboard.model_download import download_box, downloaded_notice

    entries = [get_catalog_entry(name) for name in lesson.needs]
    missing = [e for e in entries if not is_cached(e)]
    for e in entries:
        downloaded_notice(e.name)
    if not missing:
        st.success(f"The models of this lesson are downloaded: {', '.join(e.name for e in entries)}.")
        return
    st.warning(
        f"This lesson needs {len(missing)} RobustBench model(s) that are not downloaded yet. Until then their "
        "links open the page with the same download button; the links without them work as they are."
    )
    for i, e in enumerate(missing):
        if download_box(e, f"lesson_{lesson.slug}_{i}"):
            st.rerun()


def show_lesson(lesson: Lesson, number: int) -> None:
    st.header(f"Lesson {number}: {lesson.title}")
    st.markdown(f"**Goal.** {lesson.goal}")
    st.markdown(f"**The idea.** {lesson.idea}")
    st.latex(lesson.formula)
    needed_models(lesson)
    st.markdown("**Try it** (each link opens the page with every setting in place):")
    step_links(lesson)
    st.markdown(f"**What to look for.** {lesson.look_for}")
    st.markdown(f"**Question.** {lesson.question}")
    with st.expander("Answer"):
        st.markdown(lesson.answer)


def render() -> None:
    page_setup("Lessons")
    forget_lesson_link()  # following a lesson link again from here applies it afresh
    st.caption(
        f"{len(LESSONS)} guided experiments. Each explains one idea, opens the pages it needs in a prepared "
        "state (the whole state is in the link: share it, bookmark it), says what to look for, and ends with "
        "a question."
    )
    slugs = [lesson.slug for lesson in LESSONS]
    titles = {lesson.slug: f"{i}. {lesson.title}" for i, lesson in enumerate(LESSONS, start=1)}
    slug = synced(st.radio, LESSON_TOPIC, slugs[0], "Lesson", slugs, format_func=titles.get)
    st.divider()
    show_lesson(lesson_by_slug(slug), slugs.index(slug) + 1)


if __name__ == "__main__":
    render()
