"""Fetch the JavaScript the book needs offline (MathJax 3, require.js, the widget manager).

They come from the npm registry with `npm pack`, like any other dependency, into
.book_assets/vendor/ (ignored by git; _config.yml serves it through html_extra_path).
Nothing is fetched when the versions on disk already match.
"""
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {  # npm package -> (version, folder inside the package, destination under vendor/)
    "mathjax": ("3.2.2", "es5", "mathjax/es5"),
    "requirejs": ("2.3.7", "require.js", "require.js"),
    "@jupyter-widgets/html-manager": ("1.0.15", "dist", "html-manager"),
}
VENDOR = Path(__file__).resolve().parent.parent / ".book_assets" / "vendor"
STAMP = VENDOR / "VERSIONS"


def main() -> int:
    wanted = "\n".join(f"{name}@{spec[0]}" for name, spec in PACKAGES.items())
    if STAMP.is_file() and STAMP.read_text() == wanted:
        print(f"book assets up to date in {VENDOR}")
        return 0
    if shutil.which("npm") is None:
        print("npm is needed once to fetch MathJax, require.js and the widget manager; install Node.js", file=sys.stderr)
        return 1
    shutil.rmtree(VENDOR, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, inner, dest) in PACKAGES.items():
            out = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=tmp,
                                 check=True, capture_output=True, text=True).stdout.split()[-1]
            with tarfile.open(Path(tmp) / out) as tar:
                tar.extractall(Path(tmp) / name.replace("/", "_"), filter="data")
            src = Path(tmp) / name.replace("/", "_") / "package" / inner
            target = VENDOR / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, target)
    STAMP.write_text(wanted)
    print(f"fetched {', '.join(PACKAGES)} into {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
