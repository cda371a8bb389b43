"""The server's web page (chapter 17) in headless Chromium: what it streams is what the API returns.

Skips, saying why, when Chromium, Playwright or the serving extra (fastapi, uvicorn, httpx) is missing.
"""
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")

CHROMIUM = next((c for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
                 if Path(c).exists()), shutil.which("chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
NAME = "shakespeare-llama"


@pytest.fixture(scope="module")
def url():
    import quanta_tissu as qt
    from quanta_tissu.serving.app import BackgroundServer, create_app

    model, tok = qt.pretrained(NAME, progress=False)
    with BackgroundServer(create_app(model, tok, NAME, slots=2)) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, url):
    """The page at ``/``; ``page.problems`` collects JavaScript errors and failed requests."""
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(f"JavaScript error: {e}"))
    page.on("requestfailed", lambda r: page.problems.append(f"request failed: {r.url} ({r.failure})"))
    page.goto(url + "/", wait_until="load")
    yield page
    page.close()


def fill(page, prompt, **knobs):
    """Type the prompt, set sliders and fields as a user would (their "input" events fire), click Generate."""
    page.fill("#prompt", prompt)
    for name, value in knobs.items():
        page.eval_on_selector(f"#{name}", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                              str(value))
    page.click("#generate")
    page.wait_for_selector('#status[data-state="done"], #status[data-state="error"]', timeout=15000)


def test_the_page_streams_the_apis_greedy_completion(page, url):
    assert NAME in page.title() and NAME in page.text_content("h1")
    assert page.input_value("#prompt") == "ROMEO:\n"  # the default prompt
    statuses = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    fill(page, "KING RICHARD:\n", temperature=0, max_tokens=30)
    assert page.get_attribute("#status", "data-state") == "done", page.text_content("#error")
    assert page.text_content("#output .prompt") == "KING RICHARD:\n"
    shown = page.text_content("#completion")
    body = {"model": NAME, "prompt": "KING RICHARD:\n", "max_tokens": 30, "temperature": 0, "top_k": 0, "top_p": 1}
    expected = httpx.post(url + "/v1/completions", json=body, timeout=30).json()["choices"][0]["text"]
    assert shown == expected and len(shown) > 0
    assert page.text_content("label output[for=temperature]").startswith("0")  # the live label followed
    assert page.is_enabled("#generate") and not page.is_enabled("#stop")
    assert all(status < 400 for status, _ in statuses), statuses
    assert page.problems == []


@pytest.mark.parametrize("prompt", ["To be, or not to be: that is the question. " * 2, "ROMEO: café\n"],
                         ids=["too-long", "unknown-character"])
def test_a_refused_request_shows_the_servers_message(page, url, prompt):
    fill(page, prompt, max_tokens=30)
    assert page.get_attribute("#status", "data-state") == "error"
    body = {"model": NAME, "prompt": prompt, "max_tokens": 30, "stream": True}
    reply = httpx.post(url + "/v1/completions", json=body, timeout=30)
    assert 400 <= reply.status_code < 500
    assert page.text_content("#error") == reply.json()["error"]["message"]
    assert page.is_visible("#error") and page.is_enabled("#generate")
    assert page.problems == []
