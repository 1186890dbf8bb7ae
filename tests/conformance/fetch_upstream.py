"""Fetch aiohttp 3.10.11's own connector tests from its sdist, for the conformance run.

We do not copy aiohttp's tests into this repository: this script downloads the
release's sdist from the package index (once, into ``.upstream-cache/``, checked
against a pinned sha256) and extracts the few test files the conformance run
needs into ``tests/conformance/upstream/`` (ignored by git).

Usage: ``python tests/conformance/fetch_upstream.py [--cache DIR]`` (needs pip
in the interpreter that runs it; nox runs it with its own interpreter).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import List

RELEASE = "3.10.11"
SDIST = f"aiohttp-{RELEASE}.tar.gz"
SDIST_SHA256 = "9dc2b8f3dcab2e39e0fa309c8da50c3b55e6f34ab25f1a71d3288f24924d33a7"

# test_connector.py's only local import is the conftest (its fixtures and the
# aiohttp pytest plugin); it reads no data files.
FILES = ("tests/test_connector.py", "tests/conftest.py")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_CACHE = REPO / ".upstream-cache"
TARGET = HERE / "upstream"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def download(cache: Path) -> Path:
    sdist = cache / SDIST
    if sdist.exists() and sha256(sdist) == SDIST_SHA256:
        return sdist
    cache.mkdir(parents=True, exist_ok=True)
    sdist.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
           f"aiohttp=={RELEASE}", "--dest", str(cache)]  # fmt: skip
    subprocess.run(cmd, check=True)
    got = sha256(sdist)
    if got != SDIST_SHA256:
        sdist.unlink()
        raise SystemExit(f"{SDIST}: sha256 {got} is not the pinned {SDIST_SHA256}")
    return sdist


def extract(sdist: Path, target: Path = TARGET) -> List[Path]:
    """Write FILES into ``target``; a file already there with the same bytes is left alone."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist) as tar:
        for name in FILES:
            source = tar.extractfile(f"aiohttp-{RELEASE}/{name}")
            if source is None:
                raise SystemExit(f"{SDIST}: {name} is not a regular file")
            data = source.read()
            out = target / Path(name).name
            if not out.exists() or out.read_bytes() != data:
                tmp = out.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(out)  # atomic: a concurrent run never sees half a file
            written.append(out)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    for path in extract(download(args.cache)):
        print(f"extracted {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
