"""The web page in a real headless Chromium (Debian's, driven by Playwright): choose a
user, see their context and outputs, compare baseline and personalized answers with the
context that shaped them highlighted, give thumbs, delete the user; a screenshot is saved."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.server import Running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make install installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def test_the_page_compares_highlights_takes_feedback_and_deletes(
    server: Running, browser: object, tmp_path: Path
) -> None:
    with server.client("acme") as client:
        # A document with markup in it: shown as text, never run.
        records = [
            {"type": "user", "user_id": "web-user", "profile": {"likes": "hiking"}},
            {
                "type": "document",
                "user_id": "web-user",
                "doc_id": "w1",
                "text": "<img src=x onerror=\"document.title='pwned'\"> my battery dies on long hikes",
            },
            {
                "type": "document",
                "user_id": "web-user",
                "doc_id": "w2",
                "text": "I bake bread on Sundays",
            },
        ]
        assert client.post("/records", json={"records": records}).status_code == 200
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/")
    assert page.url.endswith("/ui/")
    page.fill("#key", server.keys["acme"])
    page.click("#connect button")
    page.wait_for_selector("#users option[value='web-user']")
    page.select_option("#users", "web-user")
    page.wait_for_selector("#documents li[data-doc-id='w1']")
    assert "onerror" in page.inner_text("#documents")  # the markup is text
    assert page.title() == "pgen"
    assert "hiking" in page.inner_text("#profile")

    page.fill("#instruction", "advice for my battery on long hikes")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#personalized .text').textContent !== ''")
    assert page.inner_text("#baseline .shaped") == "Shaped by no context"
    assert "w1" in page.inner_text("#personalized .shaped")
    highlighted = page.eval_on_selector_all(
        "#documents li.used", "els => els.map(e => e.dataset.docId)"
    )
    assert highlighted[0] == "w1"
    page.wait_for_selector("#outputs li")

    page.click("#personalized .thumbs button[data-thumbs='1']")
    page.wait_for_function("document.getElementById('status').textContent.includes('feedback')")
    shot = tmp_path / "web.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("PGEN_SCREENSHOTS"):  # keep a copy (docs/screenshots/ holds one)
        shutil.copy(shot, Path(os.environ["PGEN_SCREENSHOTS"]) / "web-page.png")
    with server.client("acme") as client:
        feedback = client.get("/users/web-user/feedback").json()
        assert [f["thumbs"] for f in feedback] == [1]

    # Deleting asks first: dismissed, nothing happens; accepted, the user is gone.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete")
    page.wait_for_timeout(300)
    with server.client("acme") as client:
        assert client.get("/users/web-user").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('deleted')")
    assert page.locator("#users option[value='web-user']").count() == 0
    with server.client("acme") as client:
        assert client.get("/users/web-user").status_code == 404
    assert errors == []
    page.close()
