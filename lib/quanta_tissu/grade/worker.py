"""Runs one exercise check and prints its result as one JSON line (used by ``core.run_chapter``)."""
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .core import run_one

if __name__ == "__main__":
    chapter, name, path = sys.argv[1:4]
    result = run_one(chapter, name, Path(path).resolve())
    print(json.dumps(asdict(result)), flush=True)
