"""Run aiohttp 3.11.14's own DNS tests (``tests/test_connector.py``) against a patched older release.

The upstream files are fetched at test time into ``upstream/`` by
``../fetch_upstream.py`` (nox does it).  This conftest, loaded before the
upstream conftest and test module:

1. imports ``aiohttp_waiterfix`` so the fixes are active, and stops the run
   unless ``dns-trace`` is applied (or ``AIOHTTP_WAITERFIX=0`` asked for the
   unpatched run);
2. gives an older release the module-level names the test file imports: the
   very shims of ``../waiters/conftest.py`` (loaded from there, not copied),
   which make 3.10.11's file import; 3.11.14's imports the same names;
3. keeps only the DNS tests, minus those needing a later aiohttp change, as
   ``selection.py`` says, and reports what it left out and why;
4. bounds every test by ``TIMEOUT`` seconds (pytest-timeout): unpatched, the
   test of the fix does not fail, it waits forever.

Run it with ``--confcutdir=tests/conformance/dns_trace`` so the project's own
``tests/conftest.py`` stays out of the upstream run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import aiohttp
import pytest
from packaging.version import Version

# Import activation patches aiohttp.connector at once (the waiters conftest below imports it first).
import aiohttp_waiterfix
from aiohttp_waiterfix._status import fix_applied

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/conformance: harness.py
from harness import load, require_fix  # noqa: E402

FIX_ID = "dns-trace"
TIMEOUT = 5.0
"""Seconds per test: each passes in milliseconds; unpatched, the test of the fix hangs until this fails it."""
aiohttp_version = Version(aiohttp.__version__)


SELECTION = load(HERE / "selection.py")
FIX_TESTS = load(HERE / "fix_tests.py").FIX_TESTS
# Importing the waiters conformance's conftest installs its shims (and only that: its hooks are not registered).
SHIMS: List[str] = list(load(HERE.parent / "waiters" / "conftest.py").SHIMS)


def pytest_configure(config: pytest.Config) -> None:
    if not (HERE / "upstream" / "test_connector.py").exists():
        raise pytest.UsageError(
            "tests/conformance/dns_trace/upstream/ is empty: run `python tests/conformance/fetch_upstream.py "
            "tests/conformance/dns_trace` (or `nox -s conformance`) to fetch aiohttp 3.11.14's connector tests"
        )
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("the dns-trace conformance run needs pytest-timeout (source.DEPS): unpatched it hangs")
    left_out = sorted(name for name in FIX_TESTS if SELECTION.reason_for(name, f"::{name}", aiohttp_version))
    if left_out:
        raise pytest.UsageError(f"selection.py leaves out tests of the fix: {', '.join(left_out)}")
    require_fix(FIX_ID)


def pytest_report_header(config: pytest.Config) -> List[str]:
    status = aiohttp_waiterfix.status()
    return [
        f"conformance: upstream aiohttp 3.11.14 DNS tests on aiohttp {aiohttp.__version__}, "
        f"Python {sys.version.split()[0]}",
        f"waiterfix: {FIX_ID} applied={fix_applied(status, FIX_ID)} ({status.reason})",
        f"shims: {', '.join(SHIMS) or 'none'}; timeout {TIMEOUT:g} s per test",
    ]


_LEFT_OUT = pytest.StashKey[List[Tuple[pytest.Item, str]]]()


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    keep: List[pytest.Item] = []
    left_out: List[Tuple[pytest.Item, str]] = []
    for item in items:
        reason = SELECTION.reason_for(item.name, item.nodeid, aiohttp_version)
        if reason is None:
            item.add_marker(pytest.mark.timeout(TIMEOUT))
            keep.append(item)
        else:
            left_out.append((item, reason))
    if left_out:
        config.hook.pytest_deselected(items=[item for item, _ in left_out])
        items[:] = keep
    config.stash[_LEFT_OUT] = left_out


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    # Also under -q, which hides the report header: say what ran, with which shims, and what was left out.
    left_out = config.stash.get(_LEFT_OUT, [])
    by_reason: Dict[str, List[str]] = {}
    for item, reason in left_out:
        by_reason.setdefault(reason, []).append(item.name)
    excluded = {reason: names for reason, names in by_reason.items() if reason != SELECTION.NOT_SELECTED}
    if excluded:
        terminalreporter.section(f"excluded for aiohttp {aiohttp.__version__} (conformance/dns_trace/selection.py)")
        for reason, names in excluded.items():
            terminalreporter.write_line(f"{', '.join(names)}: {reason}")
    status = aiohttp_waiterfix.status()
    others = len(by_reason.get(SELECTION.NOT_SELECTED, ()))
    terminalreporter.write_line(
        f"conformance: aiohttp {aiohttp.__version__}, {FIX_ID} applied={fix_applied(status, FIX_ID)}, "
        f"{sum(map(len, excluded.values()))} DNS tests excluded, {others} other tests not selected, "
        f"{len(SHIMS)} shims: {'; '.join(SHIMS) or 'none'}"
    )
