"""Run aiohttp 3.11.11's own ``tests/test_flowcontrol_streams.py`` against a release patched with ``paused-eof``.

The upstream files are fetched at test time into ``upstream/`` (``../fetch_upstream.py``;
never committed).  This conftest, loaded before the upstream conftest and test
module, imports ``aiohttp_waiterfix`` so the fixes are active and stops the
run unless the ``paused-eof`` fix is applied, or ``AIOHTTP_WAITERFIX=0`` asks
for the unpatched run, or the release has upstream's fix (3.11.11 and later:
the reference run).  The file runs as it is on 3.8.0-3.11.10, with one
exception: aiohttp 3.11.0-3.11.2 have no ``streams.FlowControlDataQueue``
(3.11.0 replaced it, 3.11.3 restored it), which the file names in annotations
at import.  There a placeholder stands in while the file is collected, and the
file's six tests of that class are skipped; the tests of the fix use
``StreamReader`` and run.  At the end it says how the tests of the fix
(``fix_tests.py``) fared.

Run it with ``--confcutdir=tests/conformance/paused_eof`` so neither the
project's ``tests/conftest.py`` nor another fix's conformance conftest loads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List

import aiohttp
import aiohttp.connector
import aiohttp.streams
import pytest

import aiohttp_waiterfix  # import activation: aiohttp.connector is loaded, so the fixes apply now
from aiohttp_waiterfix._registry import PAUSED_EOF
from aiohttp_waiterfix._status import assess, fix_applied

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/conformance: harness.py
from harness import load, require_fix  # noqa: E402

SOURCE = load(HERE / "source.py")
FIX_TESTS: frozenset = load(HERE / "fix_tests.py").FIX_TESTS  # type: ignore[type-arg]
AFFECTED = assess(PAUSED_EOF, aiohttp.__version__).affected
APPLIED = fix_applied(aiohttp_waiterfix.status(), PAUSED_EOF.id)
_FIX_OUTCOMES: Dict[str, str] = {}
"""Test of the fix -> passed / failed / skipped (the worst of its phases)."""


def _mode() -> str:
    if APPLIED:
        return "patched"
    if AFFECTED is False:
        return f"reference: aiohttp {aiohttp.__version__} has upstream's fix"
    return "unpatched"


NO_FLOW_CONTROL_QUEUE = not hasattr(aiohttp.streams, "FlowControlDataQueue")
"""aiohttp 3.11.0-3.11.2: the class the upstream file's annotations name is absent."""


class _AbsentFlowControlDataQueue:
    """Only lets the upstream file be imported; removed again once collection ends."""


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name in SOURCE.TESTS if not (HERE / "upstream" / name).exists()]
    if missing:
        raise pytest.UsageError(
            f"tests/conformance/paused_eof/upstream/ lacks {', '.join(missing)}: run "
            "`python tests/conformance/fetch_upstream.py tests/conformance/paused_eof` "
            f"to fetch aiohttp {SOURCE.RELEASE}'s tests"
        )
    require_fix(PAUSED_EOF.id, reference_ok=True)  # on 3.11.11+ the reference run
    if NO_FLOW_CONTROL_QUEUE:
        aiohttp.streams.FlowControlDataQueue = _AbsentFlowControlDataQueue  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    if NO_FLOW_CONTROL_QUEUE:
        del aiohttp.streams.FlowControlDataQueue  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> List[str]:
    return [
        f"conformance: upstream aiohttp {SOURCE.RELEASE} flow-control tests on aiohttp {aiohttp.__version__}, "
        f"Python {sys.version.split()[0]}: {_mode()}"
    ]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    # Before -k/-m deselect anything: a test of the fix renamed or gone upstream must not vanish silently.
    absent = sorted(FIX_TESTS - {item.name for item in items})
    if absent:
        raise pytest.UsageError(f"fix_tests.py names tests the upstream file does not have: {', '.join(absent)}")
    if NO_FLOW_CONTROL_QUEUE:
        skip = pytest.mark.skip(reason=f"aiohttp {aiohttp.__version__} has no FlowControlDataQueue (3.11.0-3.11.2)")
        for item in items:
            if item.name.startswith("test_flow_control_data_queue_"):
                item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.rsplit("::", 1)[-1]
    counts = report.when == "call" or report.outcome != "passed"  # a failed setup counts, a passed one does not
    if name in FIX_TESTS and counts and _FIX_OUTCOMES.get(name) != "failed":
        _FIX_OUTCOMES[name] = report.outcome


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    # Also under -q, which hides the report header.
    counts: Dict[str, int] = {}
    for outcome in _FIX_OUTCOMES.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    fix_counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none ran"
    terminalreporter.write_line(
        f"conformance (paused-eof): aiohttp {aiohttp.__version__}, {_mode()}; "
        f"upstream tests of the fix ({len(FIX_TESTS)}): {fix_counts}"
    )
