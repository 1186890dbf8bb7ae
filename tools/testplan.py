"""What the nox sessions run, in one place: releases, Pythons, wheels, the default subset, and run records.

``noxfile.py`` keeps only the sessions; ``tools/compat_table.py`` reads the
same data to render the README's table, so the table and the matrix cannot
disagree.  Everything about the fixes is derived from their declarations
(``aiohttp_waiterfix/_registry.py``) and the recorded fingerprints, which are
loaded by path: importing the package would activate it.  Standard library
plus ``packaging`` (a dependency of nox).
"""

from __future__ import annotations

import importlib.util
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

from pythons import PYTHON_MINORS, find_pythons

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiohttp_waiterfix"


def load(name: str, path: Path) -> ModuleType:
    """Import a file by path, without importing its package."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_registry = load("_waiterfix_registry", PACKAGE / "_registry.py")
_versions = load("_waiterfix_versions", PACKAGE / "_versions.py")

FIXES: Tuple[Any, ...] = _registry.FIXES
RELEASES: Tuple[str, ...] = _versions.RELEASES
INDEX: Dict[str, int] = _versions.RELEASE_INDEX
NEWEST = RELEASES[-1]
"""The newest release we know: every fix is upstream there, so the shim must leave it untouched."""


def key(version: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# --- which release needs which fix ---------------------------------------------------------------------------------


def fixes_for(release: str) -> List[str]:
    """Ids of the fixes declared for ``release``."""
    return [fix.id for fix in FIXES if any(INDEX[v.first] <= INDEX[release] <= INDEX[v.last] for v in fix.variants)]


def variant_ends(fix: Any) -> List[str]:
    """The first and last release of each code variant the fix declares (each needs its own replacement code)."""
    return sorted({end for variant in fix.variants for end in (variant.first, variant.last)}, key=INDEX.__getitem__)


NEEDING = tuple(release for release in RELEASES if fixes_for(release))
"""Every release that needs at least one fix."""
FIXED_IN = tuple(sorted({fix.fixed_in for fix in FIXES}, key=INDEX.__getitem__))
SUITE_RELEASES = tuple(sorted({*NEEDING, *FIXED_IN, NEWEST}, key=INDEX.__getitem__))
"""What our suite runs on: patched, then each fix's fixing release and the newest, left alone."""

REPRESENTATIVE = tuple(
    sorted(
        {end for fix in FIXES for end in variant_ends(fix)} | set(FIXED_IN) | {NEWEST},
        key=INDEX.__getitem__,
    )
)
"""The default CI run's releases: both ends of every code variant of every fix, each fixing release, the newest."""
FULL_SUITE = frozenset(
    {RELEASES[0], max((r for r in RELEASES if len(fixes_for(r)) == len(FIXES)), key=INDEX.__getitem__), NEWEST}
)
"""Releases whose default-run session runs the whole suite: the oldest, the newest that needs every fix, the newest.
The other representative ones skip the slow and the release-independent start-up suites (about 20 s instead of
90 s a run); `nox -s matrix` runs the whole suite everywhere."""

# --- which Python each release runs on ------------------------------------------------------------------------------

PYTHONS: Dict[str, Optional[str]] = find_pythons()
MINOR_OF: Dict[str, str] = {path: minor for minor, path in PYTHONS.items() if path}
DEFAULT_MINOR = "3.11"

# Python versions a release supports (its sdist's requires-python) and the newest one PyPI has wheels of it for.
REQUIRES_PYTHON: Tuple[Tuple[str, str], ...] = (("3.8.0", "3.8"), ("3.11.0", "3.9"), ("3.14.0", "3.10"))
WHEELS_UP_TO: Tuple[Tuple[str, str], ...] = (
    ("3.8.0", "3.10"),  # 3.8.0, 3.8.1
    ("3.8.2", "3.11"),  # 3.8.2-3.8.6
    ("3.9.0", "3.12"),  # 3.9.0-3.10.4
    ("3.10.5", "3.13"),  # 3.10.5 on
)


def _newest_at(table: Sequence[Tuple[str, str]], release: str) -> str:
    return [value for first, value in table if key(release) >= key(first)][-1]


def supports(release: str, minor: str) -> bool:
    return key(minor) >= key(_newest_at(REQUIRES_PYTHON, release))


def has_wheel(release: str, minor: str) -> bool:
    return supports(release, minor) and key(minor) <= key(_newest_at(WHEELS_UP_TO, release))


MATRIX_LEFT_OUT: Dict[Tuple[str, str], str] = {
    **{
        (release, minor): "aiohttp < 3.8.2 does not support Python 3.11+ (timeouts become ClientOSError)"
        for release in ("3.8.0", "3.8.1")
        for minor in ("3.11", "3.12", "3.13")
    },
    **{
        (release, minor): f"aiohttp {release[:4]}+ requires Python {_newest_at(REQUIRES_PYTHON, release)}+"
        for release in SUITE_RELEASES
        for minor in PYTHON_MINORS
        if not supports(release, minor)
    },
}
"""(release, Python) pairs with neither a wheel nor a working build, and why."""


def python_for(release: str) -> Tuple[str, Optional[str]]:
    """(minor, interpreter) of a release's single run: 3.11, else the newest Python it has wheels for.

    The interpreter is None when this machine has no Python the release installs on: its runs are left out.
    """
    candidates = [m for m in PYTHON_MINORS if has_wheel(release, m) and PYTHONS[m]]
    if DEFAULT_MINOR in candidates:
        return DEFAULT_MINOR, PYTHONS[DEFAULT_MINOR]
    if not candidates:
        return DEFAULT_MINOR, None
    minor = max(candidates, key=key)
    return minor, PYTHONS[minor]


# --- prove_failing and conformance ----------------------------------------------------------------------------------

PROOFS: Dict[str, List[Tuple[str, str]]] = {}
"""release -> (marker, fix id) whose every test must fail there with AIOHTTP_WAITERFIX=0: a fix's `fix` tests on
its first and last release, its `improvement` tests on its last release and on the release that fixed it."""
for _fix in FIXES:
    for _release, _marker in (
        (_fix.first_affected, "fix"),
        (_fix.last_affected, "fix"),
        (_fix.last_affected, "improvement"),
        (_fix.fixed_in, "improvement"),
    ):
        PROOFS.setdefault(_release, []).append((_marker, _fix.id))

CONFORMANCE_DIR = ROOT / "tests" / "conformance"
CONFORMANCE_DEFAULT: Dict[str, Tuple[str, ...]] = {
    # Both ends of the one code variant, plus where the most exclusions change (3.9.0 the 3.9 line,
    # 3.10.0 happy eyeballs, 3.10.6 SSL contexts and DNS resolution tasks); conformance_all runs all 24.
    "waiters": ("3.8.0", "3.9.0", "3.10.0", "3.10.6", "3.10.10"),
}


def conformance_fixes() -> List[Any]:
    """The fixes that have a conformance directory (tests/conformance/<module>/source.py)."""
    return [fix for fix in FIXES if (CONFORMANCE_DIR / fix.module / "source.py").exists()]


def conformance_source(fix: Any) -> ModuleType:
    return load(f"_conformance_{fix.module}", CONFORMANCE_DIR / fix.module / "source.py")


def conformance_releases(fix: Any, everything: bool = False) -> Tuple[str, ...]:
    if everything:
        return tuple(r for v in fix.variants for r in _versions.release_range(v.first, v.last))
    return CONFORMANCE_DEFAULT.get(fix.id) or tuple(variant_ends(fix))


# --- run records (the compatibility table is made of them) ----------------------------------------------------------


def junit_results(path: Path) -> List[Tuple[str, str, str]]:
    """(test id, outcome, message) from a pytest junit xml; outcome: passed, failed, error or skipped."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):  # no file, or pytest died while writing it: no results to report
        return []
    results = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = " ".join((child.get("message") or "").split())[:110]
                break
        results.append((name, outcome, message))
    return results


def write_record(
    results_dir: Path,
    python: str,
    release: str,
    variant: str,
    applied: List[str],
    outcome: str,
    junit: Path,
    started: float,
) -> None:
    """One JSON record of a run of our suite: (python, release, variant) -> fixes applied, outcome, counts."""
    counts: Dict[str, int] = {}
    for _, result, _ in junit_results(junit):
        counts[result] = counts.get(result, 0) + 1
    record = {
        "python": MINOR_OF.get(python, python),
        "aiohttp": release,
        "variant": variant,
        "fixes": applied,
        "outcome": outcome,
        "counts": counts,
        "seconds": round(time.monotonic() - started),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{record['python']}-{release}-{variant}.json").write_text(
        json.dumps(record, indent=1, sort_keys=True) + "\n"
    )
