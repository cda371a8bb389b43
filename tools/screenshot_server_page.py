"""A screenshot of the serving web page (chapter 17) in the middle of real use, for the book.

Starts the OpenAI-compatible server on the course model (``shakespeare-llama``) on a free loopback port, opens its
page in headless Chromium at 1000x700, generates from "JULIET:\\n" (temperature 0.8, seed 1337, 56 tokens: the 8
prompt characters and the completion fill the model's 64-character context), waits until the page says done, and
saves a PNG.

    QUANTA_TISSU_DATA=... python tools/screenshot_server_page.py [out.png]   # default book/images/serving_page.png

Exits 0 without a screenshot, saying why, when Chromium or Playwright is missing (as tools/check_pages.py does).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
PROMPT, MAX_TOKENS = "JULIET:\n", 56  # 8 + 56 = 64, the context
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def set_value(page, selector: str, value) -> None:
    """Set an input's value as a user would: the page's "input" listeners (the live labels) see it."""
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(value))


def main(out: str | None = None) -> int:
    chromium = next((c for c in CHROMIUM_CANDIDATES if Path(c).exists()), shutil.which("chromium"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("SKIPPED: playwright is not installed (pip install -r requirements-test.txt)")
        return 0
    if chromium is None:
        print("SKIPPED: no Chromium found (Debian: apt-get install chromium)")
        return 0

    import quanta_tissu as qt
    from quanta_tissu.serving.app import BackgroundServer, create_app

    model, tok = qt.pretrained("shakespeare-llama", progress=False)
    path = Path(out) if out else ROOT / "book" / "images" / "serving_page.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with BackgroundServer(create_app(model, tok, "shakespeare-llama")) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(url + "/", wait_until="load")
        page.fill("#prompt", PROMPT)
        set_value(page, "#temperature", 0.8)
        set_value(page, "#max_tokens", MAX_TOKENS)
        page.fill("#seed", "1337")
        page.click("#generate")
        page.wait_for_selector('#status[data-state="done"], #status[data-state="error"]', timeout=30000)
        error = page.text_content("#error")
        if not error:
            page.screenshot(path=str(path))
        browser.close()
    if error:
        print(f"the page shows an error, no screenshot: {error}")
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
