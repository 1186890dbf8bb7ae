"""Fetch aiohttp 3.11.11's flow-control tests for this directory's conformance run (stand-in, standard library only).

Usage: ``python tests/conformance/paused_eof/fetch.py [--cache DIR]``

Reads ``source.py`` (RELEASE, SDIST_SHA256, FILES), downloads that sdist from
the package index once into ``.upstream-cache/`` (checked against the pinned
sha256) and extracts FILES into ``upstream/`` here (ignored by git).  Drop it
once ``tests/conformance/fetch_upstream.py`` takes a fix directory.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
INDEX = "https://pypi.org/simple/aiohttp/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO / ".upstream-cache")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("_paused_eof_source", HERE / "source.py")
    assert spec is not None and spec.loader is not None
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    sdist = args.cache / f"aiohttp-{source.RELEASE}.tar.gz"
    if not sdist.exists() or hashlib.sha256(sdist.read_bytes()).hexdigest() != source.SDIST_SHA256:
        request = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            url = next(f["url"] for f in json.load(response)["files"] if f["filename"] == sdist.name)
        with urllib.request.urlopen(url, timeout=300) as response:
            data = response.read()
        got = hashlib.sha256(data).hexdigest()
        if got != source.SDIST_SHA256:
            raise SystemExit(f"{sdist.name}: sha256 {got} is not the pinned {source.SDIST_SHA256}")
        args.cache.mkdir(parents=True, exist_ok=True)
        sdist.write_bytes(data)
    target = HERE / "upstream"
    target.mkdir(exist_ok=True)
    with tarfile.open(sdist) as tar:
        for name in source.FILES:
            member = tar.extractfile(f"aiohttp-{source.RELEASE}/{name}")
            if member is None:
                raise SystemExit(f"{sdist.name}: {name} is not a regular file")
            out = target / Path(name).name
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(member.read())
            tmp.replace(out)  # atomic: a concurrent run never sees half a file
            print(f"extracted {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
