"""Show the real source of a lib object inside a chapter, so nothing is copied.

Introduced in chapter 01; every chapter uses it.

Does: render a function, class or method's source (with its file and line numbers)
as a highlighted code block, as Markdown in notebooks and plain text elsewhere;
render small results tables the same way (``table``); ``show_diff`` shows how a piece changed
from one chapter's version to the next one's.
Does not: import IPython at module import, or show objects defined outside ``quanta_tissu``.
"""
from __future__ import annotations

import inspect
from pathlib import Path

_ROOT = Path(__file__).resolve().parent


class Source:
    """A snippet of lib source that displays as Markdown in Jupyter and as text in a terminal."""

    def __init__(self, title: str, code: str, language: str = "python"):
        self.title = title
        self.code = code
        self.language = language  # "diff" for show_diff

    def _repr_markdown_(self) -> str:
        return f"**{self.title}**\n\n```{self.language}\n{self.code}\n```\n"

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.code}"


def show_source(obj) -> Source:
    """Return the source of ``obj`` (a lib function, class or method) for display."""
    obj = inspect.unwrap(obj)  # show the function itself, not a decorator's wrapper (e.g. torch.no_grad)
    try:
        lines, start = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj)).resolve()
    except (TypeError, OSError) as exc:
        raise TypeError(f"cannot show the source of {obj!r}: {exc}") from None
    if _ROOT not in path.parents and path != _ROOT:
        raise TypeError(f"{obj!r} is not part of quanta_tissu; show_source only shows the course library")
    rel = path.relative_to(_ROOT.parent)
    name = f"{obj.__module__}.{obj.__qualname__}".replace("quanta_tissu.", "qt.", 1)
    title = f"{name} — lib/{rel.as_posix()}, lines {start}–{start + len(lines) - 1}"
    return Source(title, "".join(lines).rstrip("\n"))


def show_diff(old, new) -> Source:
    """A unified diff from ``old``'s source to ``new``'s: how a chapter's piece evolves the previous one."""
    import difflib

    a, b = show_source(old), show_source(new)
    lines = difflib.unified_diff(a.code.splitlines(), b.code.splitlines(), lineterm="", n=2)
    body = [ln for ln in lines if not ln.startswith(("---", "+++"))]
    return Source(f"from {a.title.split(' — ')[0]} to {b.title.split(' — ')[0]}", "\n".join(body), "diff")


class Table:
    """Rows of values that display as a Markdown table in Jupyter and as aligned text elsewhere."""

    def __init__(self, headers, rows, floatfmt: str = ".3f"):
        self.headers = [str(h) for h in headers]
        self.rows = [[f"{v:{floatfmt}}" if isinstance(v, float) else str(v) for v in row] for row in rows]

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        widths = [max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [self.headers, *self.rows])


def table(headers, rows, floatfmt: str = ".3f") -> Table:
    """A small results table, e.g. ``table(["model", "val loss"], [["bigram", 2.48]])``."""
    return Table(headers, rows, floatfmt)


_TOKEN_COLOURS = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d7f9f1", "#fce1c8", "#e0f0ff"]


def tokens_html(pieces) -> str:
    """HTML that shows each token piece on its own background colour (spaces and newlines visible)."""
    import html

    spans = []
    for i, piece in enumerate(pieces):
        shown = html.escape(piece).replace(" ", "␣").replace("\n", "↵<br>")
        spans.append(f'<span style="background:{_TOKEN_COLOURS[i % len(_TOKEN_COLOURS)]};'
                     f'padding:1px 0;border-right:1px solid #999" title="token {i}">{shown}</span>')
    return '<div style="font-family:monospace;line-height:1.9;white-space:pre-wrap">' + "".join(spans) + "</div>"


class HTML:
    """Raw HTML that displays as HTML in Jupyter (no IPython import needed)."""

    def __init__(self, html: str):
        self.html = html

    def _repr_html_(self) -> str:
        return self.html


def token_explorer(tokenizer, text: str):
    """A widget: type text, see it cut into tokens, coloured, with the count and bytes per token."""
    import ipywidgets as widgets  # optional: only the interactive explorer needs it

    box = widgets.Textarea(value=text, layout=widgets.Layout(width="100%", height="80px"))
    out = widgets.HTML()

    def render(_=None):
        ids = tokenizer.encode_ordinary(box.value)
        ratio = len(box.value.encode("utf-8")) / max(len(ids), 1)
        out.value = tokens_html(tokenizer.token_strings(ids)) + f"<p>{len(ids)} tokens, {ratio:.2f} bytes per token</p>"

    box.observe(render, names="value")
    render()
    return widgets.VBox([box, out])


def below(value: float, limit: float, check: bool = True) -> str:
    """``"< 1e-7"``: a figure whose digits vary with the CPU and thread count, shown as the bound it is asserted under.

    Rounding errors and parity gaps (2.1e-07 on one machine, 1.8e-07 on another) are real measurements, but a
    stored chapter must print the same text everywhere; the claim they support is the bound, so print that and
    check it here. Raises AssertionError, naming both numbers, when ``value`` is not below ``limit``; with
    ``check=False`` (a claim about a chapter's default run, in another run) it shows the value instead.
    """
    if not value < limit:
        if not check:
            return f"{value:.1e} (the default run's bound: < {limit:g})"
        raise AssertionError(f"{value:.3g} is not below the asserted bound {limit:g}")
    if limit >= 1e-3:
        return f"< {limit:g}"
    mantissa, exponent = f"{limit:.0e}".split("e")
    return f"< {mantissa}e{int(exponent)}"  # 1e-07 -> 1e-7
