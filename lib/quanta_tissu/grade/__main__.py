"""``python -m quanta_tissu.grade CHAPTER [--file PATH]``: grade a chapter's exercises."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .core import CHAPTERS, run_chapter


def default_file(chapter: str) -> Path:
    """exercises/exNN_*.py, looked for from the current folder upwards."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        candidate = folder / "exercises" / CHAPTERS[chapter]
        if candidate.is_file():
            return candidate
    return Path("exercises") / CHAPTERS[chapter]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quanta_tissu.grade", description=__doc__)
    parser.add_argument("chapter", help=f"chapter number, one of {', '.join(CHAPTERS)}")
    parser.add_argument("--file", type=Path, help="the exercise file to grade (default: exercises/exNN_*.py)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per exercise")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    chapter = args.chapter.zfill(2)
    if chapter not in CHAPTERS:
        parser.error(f"no exercises for chapter {args.chapter!r}; chapters with exercises: {', '.join(CHAPTERS)}")
    path = (args.file or default_file(chapter)).resolve()
    if not path.is_file():
        parser.error(f"{path} does not exist; run from the course folder or pass --file")
    results = run_chapter(chapter, path, timeout=args.timeout)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=1))
    else:
        print(f"Chapter {chapter}: {path}")
        width = max(len(r.name) for r in results)
        for r in results:
            print(f"  [{'PASS' if r.passed else 'FAIL'}] {r.name:<{width}}  {r.message}")
        print(f"Score: {sum(r.passed for r in results)}/{len(results)}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
