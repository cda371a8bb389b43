"""Open the built book in headless Chromium, as a reader would, and check every chapter page.

For each chapter page: no failed request (offline, anything fetched from the network fails),
no JavaScript error, math typeset by MathJax, every image loaded, and widgets rendered from
their embedded state. A full-page screenshot of each is kept in _build/screenshots/.
Also checks that no built page loads a script or stylesheet from a CDN.

Skips (exit 0, saying why) when Chromium or Playwright is missing; .ci/run installs Chromium.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
REMOTE_ASSET = re.compile(r"<(?:script|link)\b[^>]*(?:src|href)=\"(https?:)?//[^\"]+\"[^>]*>", re.I)
CDN_HOST = re.compile(r"(?:https?:)?//[\w.-]*(?:unpkg\.com|jsdelivr\.net|cdnjs\.cloudflare\.com|googleapis\.com|cdn\.[\w.-]+)[^\s\"'<>]*", re.I)


def remote_assets(html_root: Path) -> list[str]:
    """Script and stylesheet tags that point off the book, and any mention of a CDN host.

    Plain links (<a href>) to Binder or the repository are fine: they load nothing.
    """
    found = []
    for page in html_root.rglob("*.html"):
        html = page.read_text(encoding="utf-8", errors="replace")
        for match in [*REMOTE_ASSET.finditer(html), *CDN_HOST.finditer(html)]:
            found.append(f"{page.relative_to(html_root)}: {match.group(0)[:160]}")
    return sorted(set(found))


def check_page(browser, page_path: Path, shots: Path) -> list[str]:
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
    page.goto(page_path.as_uri(), wait_until="load")
    page.wait_for_timeout(1500)  # MathJax and the widget manager typeset after load
    html = page_path.read_text(encoding="utf-8")
    if "math notranslate" in html or "\\(" in html:
        try:
            page.wait_for_selector("mjx-container", state="attached", timeout=15000)  # math in a folded answer is typeset too
        except Exception:  # noqa: BLE001 - a timeout means the math stayed raw TeX
            problems.append("math is not typeset (no mjx-container): MathJax did not load")
    broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    problems += [f"image did not load: {src}" for src in broken]
    if page.evaluate("document.querySelectorAll('.cell_output img').length") == 0:
        problems.append("no plot on the page")
    if "application/vnd.jupyter.widget-state+json" in html:
        try:
            page.wait_for_selector(".widget-hprogress, .jupyter-widgets", timeout=15000)
        except Exception:  # noqa: BLE001
            problems.append("widgets did not render from their embedded state")
    page.screenshot(path=str(shots / f"{page_path.stem}.png"), full_page=True)
    page.close()
    return problems


def main(html_root: str = "_build/html") -> int:
    root = Path(html_root).resolve()
    pages = sorted((root / "chapters").glob("*.html"))
    if not pages:
        print(f"no chapter pages under {root}/chapters: build the book first (make book)")
        return 1
    problems = [f"remote asset: {a}" for a in remote_assets(root)]
    chromium = next((c for c in CHROMIUM_CANDIDATES if Path(c).exists()), shutil.which("chromium"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
        print("SKIPPED browser check: playwright is not installed (pip install -r requirements-test.txt)")
    if chromium is None:
        print("SKIPPED browser check: no Chromium found (Debian: apt-get install chromium)")
    else:
        shots = root.parent / "screenshots"
        shots.mkdir(exist_ok=True)
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=args)
            for page_path in pages:
                found = check_page(browser, page_path, shots)
                print(f"{'ok  ' if not found else 'FAIL'} {page_path.relative_to(root)}")
                problems += [f"{page_path.name}: {p}" for p in found]
            browser.close()
        print(f"screenshots in {shots}")
    for p in problems:
        print("  -", p)
    failed = len({p.split(":")[0] for p in problems})
    print(f"browser: {len(pages) - min(failed, len(pages))} passed, {failed} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
