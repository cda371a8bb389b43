"""A local Sphinx extension for the course book: pages that work offline, without script errors.

1. Inline scripts added by extensions after the builder starts (sphinx-thebe's
   ``const THEBE_JS_URL``, sphinx-togglebutton's settings) are registered twice by
   Sphinx 7.4 (once as filename None, once as ''). A repeated ``const`` is a JavaScript
   error, so identical inline scripts are dropped after their first occurrence.
2. The course runs code through Binder, not Thebe; Jupyter Book 1 loads sphinx-thebe
   anyway, whose inline config names a CDN. Its scripts are dropped, so the pages
   hold no CDN reference at all.
3. The widget manager's modules (served from vendor/, see tools/fetch_book_assets.py) load
   their fonts relative to their require.js module paths ("@jupyter-widgets/controls",
   "@jupyter-widgets/html-manager/dist/..."); require.js path mappings point both prefixes
   at vendor/html-manager/, so the fonts load from the book itself.
"""
import json

from sphinx.application import Sphinx

HTML_MANAGER = "@jupyter-widgets/html-manager/dist"


def _filename(script) -> str:
    return getattr(script, "filename", script) or ""


def _body(script) -> str:
    return getattr(script, "attributes", {}).get("body") or ""


def _is_thebe(script) -> bool:
    return "sphinx-thebe.js" in _filename(script) or "THEBE_JS_URL" in _body(script)


def _is_duplicate(script, seen: set) -> bool:
    body = _body(script)
    if _filename(script) or not body:
        return False
    if body in seen:
        return True
    seen.add(body)
    return False


def fix_page_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set = set()
    kept = [s for s in scripts if not _is_thebe(s) and not _is_duplicate(s, seen)]
    for i, script in enumerate(kept):
        if _filename(script).endswith("vendor/require.js"):
            from sphinx.builders.html._assets import _JavaScript

            target = context["pathto"]("vendor/html-manager", 1)
            paths = {HTML_MANAGER: target, "@jupyter-widgets": target}  # the longest prefix wins
            config = "require.config({paths: %s});" % json.dumps(paths)
            kept.insert(i + 1, _JavaScript(None, body=config))
            break
    scripts[:] = kept


def setup(app: Sphinx):
    app.connect("html-page-context", fix_page_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
