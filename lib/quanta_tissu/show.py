"""Show the real source of a lib object inside a chapter, so nothing is copied.

Introduced in chapter 01; every chapter uses it.

Does: render a function, class or method's source (with its file and line numbers)
as a highlighted code block, as Markdown in notebooks and plain text elsewhere.
Does not: import IPython at module import, or show objects defined outside ``quanta_tissu``.
"""
from __future__ import annotations

import inspect
from pathlib import Path

_ROOT = Path(__file__).resolve().parent


class Source:
    """A snippet of lib source that displays as Markdown in Jupyter and as text in a terminal."""

    def __init__(self, title: str, code: str):
        self.title = title
        self.code = code

    def _repr_markdown_(self) -> str:
        return f"**{self.title}**\n\n```python\n{self.code}\n```\n"

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.code}"


def show_source(obj) -> Source:
    """Return the source of ``obj`` (a lib function, class or method) for display."""
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
