"""Corpora: the course's one loader for text data, cached and checksummed.

Introduced in chapter 01; every later chapter, script and test loads text here.

Where a corpus is looked for, in order:
1. the folder named by the environment variable ``QUANTA_TISSU_DATA``;
2. the user cache (``$QUANTA_TISSU_CACHE``, else ``$XDG_CACHE_HOME/quanta_tissu``,
   else ``~/.cache/quanta_tissu``);
3. a download from the corpus's public source into the user cache (for learners online).
Each file is checked against its sha256 before use.

Does not: ship any text (nothing of a corpus is part of the repository), retry
downloads, or decode anything but UTF-8.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_ENV = "QUANTA_TISSU_DATA"
CACHE_ENV = "QUANTA_TISSU_CACHE"


@dataclass(frozen=True)
class Corpus:
    """A named text file with its public source and checksum."""

    filename: str  # the name looked for in the data folder and the cache
    url: str  # public source, used only when the file is found nowhere locally
    sha256: str  # hex digest of the exact bytes
    size: int  # bytes, for messages


CORPORA = {
    "tinyshakespeare": Corpus(
        filename="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394,
    ),
}


class CorpusError(RuntimeError):
    """A corpus is missing, corrupt or unknown; the message says how to fix it."""


def cache_dir() -> Path:
    """The user cache folder of the course (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "quanta_tissu"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_path(name: str = "tinyshakespeare", download: bool = True) -> Path:
    """Return the path of a verified copy of corpus ``name``, downloading it if allowed."""
    corpus = _lookup(name)
    candidates = []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]).expanduser() / corpus.filename)
    candidates.append(cache_dir() / corpus.filename)
    for path in candidates:
        if path.is_file():
            _verify(path, corpus)
            return path
    if not download:
        raise CorpusError(_missing_message(name, corpus, candidates, reason="downloads are disabled"))
    return _download(name, corpus, candidates)


@lru_cache(maxsize=8)
def _read_verified(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def load_text(name: str = "tinyshakespeare", download: bool = True) -> str:
    """Return corpus ``name`` as one string (cached in memory after the first call)."""
    return _read_verified(str(corpus_path(name, download=download)))


def train_val_split(data, val_fraction: float = 0.1):
    """Split a sequence in two contiguous parts: the first ``1 - val_fraction`` is training.

    Contiguous (not shuffled) so that validation text is text the model never saw,
    not sentences interleaved with training ones.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_train = int(len(data) * (1.0 - val_fraction))
    if n_train == 0 or n_train == len(data):
        raise ValueError(f"cannot split {len(data)} items with val_fraction={val_fraction}: one side would be empty")
    return data[:n_train], data[n_train:]


# The Tempest, the last play of Tiny Shakespeare, opens with these words and lies wholly inside the validation
# split: no course model has read a line of it (chapter 15 adapts a model to it).
TEMPEST_OPENING = "Master:\nBoatswain!"


def split_held_out_play(val_text: str, opening: str = TEMPEST_OPENING) -> tuple[str, str]:
    """(the validation text before the play, the play): the play starts at ``opening``, which must occur once."""
    start = val_text.find(opening)
    if start < 0 or val_text.find(opening, start + 1) >= 0:
        raise ValueError(f"the opening {opening!r} must occur exactly once in the text "
                         f"(found {val_text.count(opening)} times); pass the validation split of the corpus")
    return val_text[:start], val_text[start:]


def _lookup(name: str) -> Corpus:
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def _verify(path: Path, corpus: Corpus) -> None:
    digest = sha256_of(path)
    if digest != corpus.sha256:
        raise CorpusError(
            f"{path} does not match the expected checksum (sha256 {digest[:12]}…, expected "
            f"{corpus.sha256[:12]}…, {path.stat().st_size} bytes, expected {corpus.size}). "
            f"Delete it and put an intact copy there (public source: {corpus.url})."
        )


def _download(name: str, corpus: Corpus, candidates: list[Path]) -> Path:
    target = cache_dir() / corpus.filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(corpus.url, timeout=30) as response:
            payload = response.read()
    except OSError as exc:  # URLError and socket errors are OSErrors
        raise CorpusError(_missing_message(name, corpus, candidates, reason=f"the download failed ({exc})")) from None
    if hashlib.sha256(payload).hexdigest() != corpus.sha256:
        raise CorpusError(f"the download of {corpus.url} does not match the expected checksum; nothing was saved")
    # Write to a temporary file then rename: a crash never leaves a half-written corpus.
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, target)
    return target


def _missing_message(name: str, corpus: Corpus, candidates: list[Path], reason: str) -> str:
    looked = "\n".join(f"  - {p}" for p in candidates)
    return (
        f"corpus {name!r} ({corpus.filename}, {corpus.size:,} bytes) was not found and {reason}.\n"
        f"Looked in:\n{looked}\n"
        f"Fix: download {corpus.url}\n"
        f"and save it as {cache_dir() / corpus.filename}, or put it in a folder of your choice "
        f"and set {DATA_ENV} to that folder."
    )
