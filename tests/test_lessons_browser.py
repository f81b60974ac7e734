"""Every lesson link, followed in a real browser, opens its page in the promised state.

Playwright drives Debian's chromium (skipped when either is missing, as in ``test_browser``). For
each lesson, the test opens the Lessons page at ``?topic=<slug>``, reads the links the page renders,
follows each one, and waits until its page shows every text of the step's ``expect`` (in the page
or as the value of one of its fields), with no exception on the page.
"""

from __future__ import annotations

import json

import pytest

from dashboard.lesson_catalog import LESSONS
from dashboard.links import PAGE_FILES as PAGES
from tests.test_browser import CHROMIUM, page, server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]

SHOWS = """(texts) => {
    const fields = Array.from(document.querySelectorAll('input, textarea')).map(e => e.value);
    const body = document.body.innerText;
    return texts.every(t => body.includes(t) || fields.some(v => v.includes(t)));
}"""


def lesson_links(page, server, slug: str, n: int) -> list[str]:  # noqa: F811
    page.goto(f"{server}/lessons?topic={slug}", wait_until="domcontentloaded")
    page.wait_for_function(f"document.querySelectorAll(\"a[href*='lesson={slug}-']\").length >= {n}", timeout=90_000)
    return page.eval_on_selector_all(f"a[href*='lesson={slug}-']", "els => els.map(e => e.href)")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.slug)
def test_lesson_links_open_their_pages_ready(server, page, lesson):  # noqa: F811
    hrefs = lesson_links(page, server, lesson.slug, len(lesson.steps))
    assert len(hrefs) == len(lesson.steps), hrefs
    for href, step in zip(hrefs, lesson.steps):
        assert f"/{step.page}?" in href, href
        page.goto(href, wait_until="domcontentloaded")
        try:
            page.wait_for_function(SHOWS, arg=list(step.expect), timeout=120_000)
        except Exception:
            body = page.locator("body").inner_text()[:3000]
            pytest.fail(f"{lesson.slug}: {step.label}: {json.dumps(step.expect)} not shown.\n{body}")
        assert page.locator("[data-testid='stException']").count() == 0, (lesson.slug, step.label)
        assert PAGES[step.page]
