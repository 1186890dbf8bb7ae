"""Test configuration: activate the shim before anything imports aiohttp.

With ``AIOHTTP_WAITERFIX=0`` the import does not patch (the unpatched run);
on aiohttp >= 3.10.11 it never patches (fixed upstream).
"""

import os

import aiohttp_waiterfix  # import activation

if os.environ.get("WAITERFIX_TEST_UVLOOP") == "1":
    # `nox -s matrix` runs the suite once under uvloop: every asyncio.run() then uses it.
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

if os.environ.get("WAITERFIX_TEST_WATCHDOG"):
    # Opt-in: the whole run with the pool watchdog on (`report` or `heal`), checking as often as
    # WAITERFIX_TEST_WATCHDOG_INTERVAL says (default 0.25 s; tests may go below the 0.1 s floor) and
    # acting after WAITERFIX_TEST_WATCHDOG_THRESHOLD.  The session ends with a leak check (see below).
    from aiohttp_waiterfix import _watchdog

    _WATCHDOG_INTERVAL = float(os.environ.get("WAITERFIX_TEST_WATCHDOG_INTERVAL", _watchdog.DEFAULT_INTERVAL))
    _watchdog.MIN_INTERVAL = min(_watchdog.MIN_INTERVAL, _WATCHDOG_INTERVAL)
    _watchdog.start(
        os.environ["WAITERFIX_TEST_WATCHDOG"],
        threshold=float(os.environ.get("WAITERFIX_TEST_WATCHDOG_THRESHOLD", _watchdog.DEFAULT_THRESHOLD)),
        interval=_WATCHDOG_INTERVAL,
    )

_MARKERS = {
    "fix(id)": "upstream behaviour our fix `id` backports: fails on the releases that need the fix, unpatched",
    "improvement(id)": "our improvement beyond upstream's fix `id`: fails unpatched and on the release that fixed it",
}
_PROOF_MARKERS = ("fix", "improvement")


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption(
        "--fix-id",
        default=None,
        help="keep only the fix/improvement tests of this fix id, and the tests marked with neither",
    )


def pytest_configure(config):  # type: ignore[no-untyped-def]
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, description in _MARKERS.items():
        if name.split("(", 1)[0] not in registered:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Check the proof markers; apply ``--fix-id``; skip improvements where upstream's own fix is in.

    An ``improvement(id)`` test can only pass where our fix ``id`` runs: on a
    release that has upstream's fix instead it fails by design, so it is
    skipped there, except under ``--fix-id`` (``prove_failing`` checks that
    it does fail there).
    """
    import aiohttp
    import pytest

    from aiohttp_waiterfix._registry import FIX_IDS, FIXES
    from aiohttp_waiterfix._status import assess

    upstream_has = {fix.id for fix in FIXES if assess(fix, aiohttp.__version__).affected is False}
    wanted = config.getoption("--fix-id")
    kept, dropped = [], []
    for item in items:
        ids = {mark.args[0] if mark.args else None for name in _PROOF_MARKERS for mark in item.iter_markers(name)}
        unknown = ids - set(FIX_IDS)
        if unknown:  # a proof that names no fix proves nothing: fail loudly at collection
            raise ValueError(
                f"{item.nodeid}: fix/improvement marker needs a known fix id, got {sorted(unknown, key=str)}"
            )
        (dropped if wanted is not None and ids and wanted not in ids else kept).append(item)
        improves = {mark.args[0] for mark in item.iter_markers("improvement") if mark.args}
        if wanted is None and improves & upstream_has:
            reason = f"aiohttp {aiohttp.__version__} has upstream's fix for {', '.join(sorted(improves))}, not ours"
            item.add_marker(pytest.mark.skip(reason=reason))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    """With WAITERFIX_TEST_WATCHDOG: once everything ran, nothing may still be watched (weak references only)."""
    if not os.environ.get("WAITERFIX_TEST_WATCHDOG"):
        return
    import gc

    from aiohttp_waiterfix import _watchdog

    gc.collect()
    status = _watchdog.snapshot()
    loops = len(_watchdog._watches)
    connectors = sum(len(watch.connectors) for watch in list(_watchdog._watches.values()))
    print(f"\nwatchdog: {status}; loops still watched: {loops}; connectors still referenced: {connectors}")
    if status.mode is None or loops or connectors:
        session.exitstatus = 1


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    import asyncio

    import aiohttp

    status = aiohttp_waiterfix.status()
    loop = type(asyncio.get_event_loop_policy()).__module__
    return f"aiohttp {aiohttp.__version__}; waiterfix applied={status.applied} ({status.reason}); loop policy: {loop}"
