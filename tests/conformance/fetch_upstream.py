"""Fetch a fixing release's own tests from its sdist, for one fix's conformance run.

Usage: ``python tests/conformance/fetch_upstream.py tests/conformance/<fix> [--cache DIR]``

We do not copy aiohttp's tests into this repository: this script reads the
fix directory's ``source.py`` (RELEASE, SDIST_SHA256, FILES), downloads that
release's sdist from the package index (once, into ``.upstream-cache/``,
checked against the pinned sha256) and extracts FILES into
``<fix>/upstream/`` (ignored by git).  Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import List

from harness import load  # this script's directory is on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_CACHE = REPO / ".upstream-cache"
INDEX = "https://pypi.org/simple/aiohttp/"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def sdist_url(release: str) -> str:
    request = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    return str(next(f["url"] for f in files if f["filename"] == f"aiohttp-{release}.tar.gz"))


def download(release: str, pinned: str, cache: Path) -> Path:
    sdist = cache / f"aiohttp-{release}.tar.gz"
    if sdist.exists() and sha256(sdist) == pinned:
        return sdist
    cache.mkdir(parents=True, exist_ok=True)
    tmp = sdist.with_name(f"{sdist.name}.{os.getpid()}.part")  # one per process: parallel nox runs fetch at once
    with urllib.request.urlopen(sdist_url(release), timeout=300) as response:
        tmp.write_bytes(response.read())
    got = sha256(tmp)
    if got != pinned:
        tmp.unlink()
        raise SystemExit(f"{sdist.name}: sha256 {got} is not the pinned {pinned}")
    tmp.replace(sdist)
    return sdist


def extract(sdist: Path, release: str, files: List[str], target: Path) -> List[Path]:
    """Write ``files`` into ``target``; a file already there with the same bytes is left alone."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(sdist) as tar:
        for name in files:
            source = tar.extractfile(f"aiohttp-{release}/{name}")
            if source is None:
                raise SystemExit(f"{sdist.name}: {name} is not a regular file")
            data = source.read()
            out = target / Path(name).name
            if not out.exists() or out.read_bytes() != data:
                tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                tmp.replace(out)  # atomic: a concurrent run never sees half a file
            written.append(out)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fix_dir", type=Path, help="tests/conformance/<fix>")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    fix_dir = args.fix_dir.resolve()
    source = load(fix_dir / "source.py")
    sdist = download(source.RELEASE, source.SDIST_SHA256, args.cache)
    for path in extract(sdist, source.RELEASE, list(source.FILES), fix_dir / "upstream"):
        print(f"extracted {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
