"""The web page in a real headless Chromium (Debian's, driven by Playwright): connect with a
key (the page says how to make one), choose a user of 50 documents, see their profile as a
table and their documents collapsed with a count, compare baseline and personalized answers
at a chosen length with the context that shaped them highlighted, give thumbs that stay
selected, upload records and a photo, delete the user. Screenshots at 1280 and 390 px wide
go to the test's tmp folder; in both, no element of the layout overlaps another and the page
is at most three screens tall."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

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
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}

# The boxes that make up the layout: each container's visible children must not overlap.
OVERLAPS = """() => {
  const containers = ["body", "header", "#connect", "main", "#users-panel", "#context-panel",
                      "#ask-panel", "#ask .controls", "#answers", ".answer", ".thumbs"];
  const found = [];
  for (const selector of containers) {
    for (const container of document.querySelectorAll(selector)) {
      const boxes = [...container.children]
        .filter((e) => e.tagName !== "SCRIPT" && e.getClientRects().length)
        .map((e) => [e, e.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && r.height > 0);
      for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) {
          const [a, ra] = boxes[i], [b, rb] = boxes[j];
          const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
          const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
          if (x > 1 && y > 1) found.push(`${selector}: ${a.id || a.tagName} / ${b.id || b.tagName}`);
        }
      }
    }
  }
  const width = document.documentElement.scrollWidth;
  if (width > window.innerWidth) found.push(`page ${width}px wide in ${window.innerWidth}px`);
  return found;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make install installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def fifty_documents() -> list[dict[str, Any]]:
    profile = {
        "likes": "hiking",
        "gear": {"boots": "leather, resoled twice", "tent": "two-person, 1.4 kg"},
        "bio": "Weekend hiker and Sunday baker who writes long reviews of " * 4,
        "languages": ["en", "de"],
    }
    records: list[dict[str, Any]] = [{"type": "user", "user_id": "web-user", "profile": profile}]
    texts = [
        # A document with markup in it: shown as text, never run.
        "<img src=x onerror=\"document.title='pwned'\"> my battery dies on long hikes",
        "I bake bread on Sundays",
    ] + [f"review {n}: the trail was muddy and the view worth it, " * 6 for n in range(48)]
    for n, text in enumerate(texts, start=1):
        records.append({"type": "document", "user_id": "web-user", "doc_id": f"w{n}", "text": text})
    return records


def open_user(page: Any, server: Running) -> None:
    page.goto(f"{server.url}/")
    assert page.url.endswith("/ui/")
    assert "pgen keys create" in page.inner_text("#key-hint")
    page.fill("#key", server.keys["acme"])
    page.click("#connect button")
    page.wait_for_selector("#users option[value='web-user']")
    page.select_option("#users", "web-user")
    page.wait_for_selector("#documents li[data-doc-id='w1']", state="attached")


def ask(page: Any, tokens: int) -> None:
    page.fill("#instruction", "advice for my battery on long hikes")
    page.fill("#max-tokens", str(tokens))
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').textContent === 'done'")


def check_layout(page: Any, shot: Path) -> None:
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert page.evaluate(OVERLAPS) == []
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 3 * page.viewport_size["height"], f"{shot.name}: {height}px tall"
    if os.environ.get("PGEN_SCREENSHOTS"):  # keep a copy (docs/screenshots/ holds them)
        shutil.copy(shot, Path(os.environ["PGEN_SCREENSHOTS"]) / shot.name)


def test_the_page_compares_highlights_takes_feedback_uploads_and_deletes(
    server: Running, browser: object, tmp_path: Path
) -> None:
    with server.client("acme") as client:
        assert client.post("/records", json={"records": fifty_documents()}).status_code == 200
    page = browser.new_page(viewport=WIDE)  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_user(page, server)
    assert page.title() == "pgen"
    # Documents collapsed behind their count; the markup is text.
    assert page.inner_text("#documents-box summary") == "Documents (50)"
    assert not page.is_visible("#documents li[data-doc-id='w1']")
    assert "onerror" in page.text_content("#documents")
    # The profile is a table of attributes, not JSON.
    rows = page.eval_on_selector_all(
        "#profile tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert ["likes", "hiking"] in rows
    assert ["languages", "en, de"] in rows
    assert "{" not in page.inner_text("#profile th")

    # Length is sent: one token (the tiny model's answers are one token long).
    ask(page, 1)
    assert page.inner_text("#baseline .shaped") == "Shaped by no context"
    assert "w1" in page.inner_text("#personalized .shaped")
    highlighted = page.eval_on_selector_all(
        "#documents li.used", "els => els.map(e => e.dataset.docId)"
    )
    assert highlighted[0] == "w1"
    assert page.is_visible("#documents li.used")  # the shaping documents are shown
    page.wait_for_selector("#outputs li", state="attached")
    with server.client("acme") as client:
        outputs = client.get("/users/web-user/outputs").json()
    assert len(outputs) == 2
    # Thumbs: the chosen one shows as selected, the other not.
    up = "#personalized .thumbs button[data-thumbs='1']"
    down = "#personalized .thumbs button[data-thumbs='-1']"
    page.click(up)
    page.wait_for_function("document.getElementById('status').textContent.includes('feedback')")
    assert page.get_attribute(up, "aria-pressed") == "true"
    assert page.get_attribute(down, "aria-pressed") == "false"
    with server.client("acme") as client:
        feedback = client.get("/users/web-user/feedback").json()
        assert [f["thumbs"] for f in feedback] == [1]
    check_layout(page, tmp_path / "web-1280.png")

    # Uploads: a JSONL file of records, and a photo for the chosen user.
    jsonl = tmp_path / "more.jsonl"
    lines = [
        {"type": "user", "user_id": "uploaded-user", "profile": {}},
        {"type": "document", "user_id": "uploaded-user", "doc_id": "u1", "text": "hello"},
    ]
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    page.click("#add-panel summary")
    page.set_input_files("#records-file", str(jsonl))
    page.click("#upload-records button")
    page.wait_for_selector("#users option[value='uploaded-user']", state="attached")
    # The upload's last step (it reloads the shown user, then says so) must end before the
    # photo's upload starts: otherwise its late status can overwrite "photo uploaded".
    page.wait_for_function("document.getElementById('status').textContent === 'records uploaded'")
    assert "2 of 2 records written" in page.inner_text("#upload-result")
    photo = tmp_path / "rex.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(photo)
    page.set_input_files("#photo-file", str(photo))
    page.click("#upload-photo button")
    page.wait_for_function("document.getElementById('status').textContent === 'photo uploaded'")
    assert "upload:" in page.inner_text("#upload-result")

    # At 390 px wide: one column, nothing overlaps, at most three screens.
    narrow = browser.new_page(viewport=NARROW)  # type: ignore[attr-defined]
    narrow.on("pageerror", lambda error: errors.append(str(error)))
    open_user(narrow, server)
    ask(narrow, 2)
    check_layout(narrow, tmp_path / "web-390.png")
    narrow.close()

    # Deleting asks first: dismissed, nothing happens; accepted, the user is gone.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete")
    page.wait_for_function("document.getElementById('status').textContent === 'kept web-user'")
    with server.client("acme") as client:
        assert client.get("/users/web-user").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('deleted')")
    assert page.locator("#users option[value='web-user']").count() == 0
    assert page.eval_on_selector_all("#profile tr", "rows => rows.length") == 0
    with server.client("acme") as client:
        assert client.get("/users/web-user").status_code == 404
    assert errors == []
    page.close()
