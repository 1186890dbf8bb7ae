"""Record (or check) the fingerprints of the code each fix replaces: ``_fingerprint_table.py``.

Usage: python tools/make_fingerprints.py [--check] [--cache DIR] [--python EXE ...]

Downloads the sdist of every release a fix is declared for (once, into the
cache, checked against the index's sha256), finds each fingerprinted
attribute of ``_registry.FIXES`` in it, and fingerprints its source with every
Python given (default: every CPython 3.8+ that ``tools/pythons.py`` finds;
each runs this script as ``--child``, which needs nothing but the standard
library and ``aiohttp_waiterfix/_fingerprint.py``).
All of them must agree, or nothing is written: that is the proof that the
fingerprint does not depend on the Python version.  ``--check`` compares with
the committed table instead of writing it.  Nothing here imports aiohttp.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from pythons import find_pythons  # noqa: E402

from aiohttp_waiterfix._registry import FIXES  # noqa: E402 (needs the sys.path entry above)

TABLE_FILE = ROOT / "aiohttp_waiterfix" / "_fingerprint_table.py"
INDEX = "https://pypi.org/simple/aiohttp/"


def sdist_url(release: str) -> Tuple[str, str]:
    """(url, sha256) of ``release``'s sdist on the package index."""
    request = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    if not hasattr(sdist_url, "files"):
        with urllib.request.urlopen(request, timeout=60) as response:
            sdist_url.files = json.load(response)["files"]  # type: ignore[attr-defined]
    name = f"aiohttp-{release}.tar.gz"
    entry = next(f for f in sdist_url.files if f["filename"] == name)  # type: ignore[attr-defined]
    return entry["url"], entry["hashes"]["sha256"]


def source_file(cache: Path, release: str, module: str) -> Path:
    """``module``'s source file (``aiohttp.connector``) from ``release``'s sdist, cached."""
    relative = module.replace(".", "/") + ".py"
    target = cache / release / relative
    if target.exists():
        return target
    sdist = cache / f"aiohttp-{release}.tar.gz"
    if not sdist.exists():
        url, sha256 = sdist_url(release)
        data = urllib.request.urlopen(url, timeout=120).read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SystemExit(f"{url}: sha256 mismatch")
        cache.mkdir(parents=True, exist_ok=True)
        sdist.write_bytes(data)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 1)
            if len(parts) == 2 and parts[1].startswith("aiohttp/") and parts[1].endswith(".py"):
                out = cache / release / parts[1]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    if not target.exists():
        raise SystemExit(f"aiohttp {release} has no {relative}")
    return target


def jobs(cache: Path) -> List[List[str]]:
    """One [fix, target, release, file, owner, name] per fingerprinted attribute and release."""
    from aiohttp_waiterfix._versions import release_range

    out = []
    for fix in FIXES:
        for variant in fix.variants:
            for release in release_range(variant.first, variant.last):
                for change in variant.changes:
                    if change.fingerprinted:
                        path = source_file(cache, release, change.module)
                        out.append([fix.id, change.target, release, str(path), change.owner, change.name])
    return out


def fingerprint_with(python: str, work: List[List[str]]) -> List[str]:
    """Run this script with ``python`` as ``--child``: the fingerprints of ``work`` computed by that Python."""
    result = subprocess.run(
        [python, __file__, "--child"], input=json.dumps(work), capture_output=True, text=True, cwd=str(ROOT)
    )
    if result.returncode:
        raise SystemExit(f"{python} failed:\n{result.stderr}")
    prints: List[str] = json.loads(result.stdout)
    return prints


def child() -> None:
    """In each interpreter: read [[fix, target, release, file, owner, name], ...], print their fingerprints."""
    from aiohttp_waiterfix._fingerprint import source_fingerprint

    out = []
    for _fix, _target, _release, path, owner, name in json.load(sys.stdin):
        text = Path(path).read_text(encoding="utf-8")
        cls = next(n for n in ast.parse(text).body if isinstance(n, ast.ClassDef) and n.name == owner)
        func = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name][-1]
        first = func.decorator_list[0].lineno if func.decorator_list else func.lineno
        out.append(source_fingerprint(text.splitlines(keepends=True), first))
    print(json.dumps(out))


Table = Dict[str, Dict[str, Dict[str, List[Tuple[str, str]]]]]


def build_table(work: List[List[str]], prints: List[str]) -> Table:
    found: Dict[str, Dict[str, Dict[str, List[str]]]] = {}
    for (fix, target, release, *_), fingerprint in zip(work, prints):
        found.setdefault(fix, {}).setdefault(target, {}).setdefault(fingerprint, []).append(release)
    return {
        fix: {
            target: {fp: to_ranges(releases) for fp, releases in sorted(hashes.items())}
            for target, hashes in sorted(targets.items())
        }
        for fix, targets in found.items()
    }


def to_ranges(releases: List[str]) -> List[Tuple[str, str]]:
    """Collapse releases into runs of consecutive known releases."""
    from aiohttp_waiterfix._versions import RELEASE_INDEX

    ranges: List[List[str]] = []
    for release in sorted(releases, key=RELEASE_INDEX.__getitem__):
        if ranges and RELEASE_INDEX[ranges[-1][1]] + 1 == RELEASE_INDEX[release]:
            ranges[-1][1] = release
        else:
            ranges.append([release, release])
    return [(a, b) for a, b in ranges]


def render(table: Table) -> str:
    lines = [
        '"""Generated by tools/make_fingerprints.py: do not edit by hand.',
        "",
        "{fix id: {Class.attribute: {source fingerprint: ((first release, last release), ...)}}}",
        '"""',
        "",
        "from typing import Dict, Tuple",
        "",
        "TABLE: Dict[str, Dict[str, Dict[str, Tuple[Tuple[str, str], ...]]]] = {",
    ]
    for fix, targets in table.items():
        lines.append(f"    {json.dumps(fix)}: {{")
        for target, hashes in targets.items():
            lines.append(f"        {json.dumps(target)}: {{")
            for digest, ranges in hashes.items():
                spans = "".join(f"({json.dumps(a)}, {json.dumps(b)}), " for a, b in ranges)
                lines.append(f"            {json.dumps(digest)}: ({spans.rstrip()}),")
            lines.append("        },")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    if sys.argv[1:] == ["--child"]:
        child()
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed table; write nothing")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "aiohttp-waiterfix-sources")
    parser.add_argument("--python", action="append", help="interpreter to fingerprint with (repeatable)")
    args = parser.parse_args()
    pythons = args.python or [path for _, path in sorted(find_pythons().items()) if path]
    work = jobs(args.cache)
    results = {python: fingerprint_with(python, work) for python in pythons}
    reference = results[pythons[0]]
    for python, prints in results.items():
        differ = [job[:3] for job, a, b in zip(work, reference, prints) if a != b]
        if differ:
            print(f"{python} disagrees with {pythons[0]} on {len(differ)} fingerprints, e.g. {differ[:3]}")
            return 1
    text = render(build_table(work, reference))
    print(f"{len(work)} fingerprints ({len(set(reference))} distinct) agree on {len(pythons)} Pythons: {pythons}")
    if args.check:
        same = TABLE_FILE.read_text(encoding="utf-8") == text
        print("the committed table is up to date" if same else f"{TABLE_FILE} is out of date: run without --check")
        return 0 if same else 1
    TABLE_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
