"""Run aiohttp 3.10.11's own ``tests/test_connector.py`` against a patched older release.

The upstream files are fetched at test time into ``upstream/`` by
``../fetch_upstream.py`` (nox does it).  This conftest, loaded before the
upstream conftest and test module, does three things:

1. imports ``aiohttp_waiterfix`` so the patch is active, and stops the run if
   it is not (unless ``AIOHTTP_WAITERFIX=0`` asked for the unpatched run);
2. supplies module-level names that 3.10.11's test file imports but an older
   release lacks, and on 3.8.x-3.9.1 spells the pool key's default ``ssl`` the
   new way (shims: nothing the waiter fix is about);
3. deselects the tests listed in ``exclusions.py`` for this release: tests of
   3.10.11 changes that are no part of the waiter fix.

Run it with ``--confcutdir=tests/conformance/waiters`` so the project's own
``tests/conftest.py`` stays out of the upstream run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import aiohttp
import aiohttp.connector
import aiohttp.resolver
import pytest
from packaging.version import Version

# Import activation patches aiohttp.connector at once (it is loaded already).
import aiohttp_waiterfix
from aiohttp_waiterfix._status import fix_applied

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/conformance: harness.py
from harness import load, require_fix  # noqa: E402

aiohttp_version = Version(aiohttp.__version__)


EXCLUSIONS = load(HERE / "exclusions.py")
FIX_TESTS = load(HERE / "fix_tests.py").FIX_TESTS


def _install_shims() -> List[str]:
    """Give an older aiohttp the module-level names 3.10.11's test file imports.

    Each shim only makes the file *import*; the tests that exercise what the
    name stands for are excluded for that release in exclusions.py when the
    old release behaves differently.
    """
    shims: List[str] = []
    connector: Any = aiohttp.connector

    if not hasattr(connector, "_SSL_CONTEXT_VERIFIED"):
        # Module-level SSL contexts arrived in 3.10.6.  3.9.x caches
        # TCPConnector._make_ssl_context (lru_cache), so its contexts are the
        # very objects _get_ssl_context returns; 3.10.0-3.10.5 build them
        # asynchronously per connector (those tests are excluded there).
        make = connector.TCPConnector._make_ssl_context
        connector._SSL_CONTEXT_VERIFIED = make(True)
        connector._SSL_CONTEXT_UNVERIFIED = make(False)
        shims.append("aiohttp.connector._SSL_CONTEXT_VERIFIED/_UNVERIFIED")

    if not hasattr(connector, "NEEDS_CLEANUP_CLOSED"):
        # 3.10.11 skips the closed-transport cleanup on CPython versions that
        # no longer need it (NEEDS_CLEANUP_CLOSED).  Older releases always do
        # it when asked, i.e. they behave as if the flag were True, which is
        # what upstream's `enable_cleanup_closed` fixture patches it to.
        connector.NEEDS_CLEANUP_CLOSED = True
        shims.append("aiohttp.connector.NEEDS_CLEANUP_CLOSED=True")

    if not hasattr(connector, "aiohappyeyeballs"):
        # 3.9.x opens sockets without aiohappyeyeballs (3.10.0+).  The test
        # module imports aiohappyeyeballs itself (installed as a test
        # dependency) and mock.patch()es `aiohttp.connector.aiohappyeyeballs.
        # start_connection`: the attribute lets that resolve; the tests that
        # need the connector to *call* it are excluded for 3.9.x.
        import aiohappyeyeballs

        connector.aiohappyeyeballs = aiohappyeyeballs
        shims.append("aiohttp.connector.aiohappyeyeballs")

    if not hasattr(aiohttp.resolver, "ResolveResult"):
        # 3.10.0 named the resolver's result dict; 3.9.x returns the same
        # plain dicts.  Used only in the test file's annotations.
        aiohttp.resolver.ResolveResult = Dict[str, Any]  # type: ignore[attr-defined]
        shims.append("aiohttp.resolver.ResolveResult")

    if aiohttp_version < Version("3.9.2"):
        # Before 3.9.2 a request's default `ssl` was None ("default SSL
        # context"), spelled True since; so 3.8.x-3.9.1 key a plain request
        # ConnectionKey(..., ssl=None, ...) where 3.10.11's tests build the
        # pool key with ssl=True.  Both mean the same thing, and the key is
        # only the pool's dict key: spell it the new way.  (_get_ssl_context
        # reads req.ssl, not the key, so TLS behaviour is untouched.)
        import attr
        from aiohttp.client_reqrep import ClientRequest

        original = ClientRequest.connection_key

        def connection_key(self: ClientRequest) -> Any:
            key = original.fget(self)  # type: ignore[attr-defined]
            return attr.evolve(key, ssl=True) if key.ssl is None else key

        ClientRequest.connection_key = property(connection_key)  # type: ignore[assignment,method-assign]
        shims.append("ClientRequest.connection_key ssl=None->True (pool key spelling before 3.9.2)")

    return shims


SHIMS = _install_shims()


def pytest_configure(config: pytest.Config) -> None:
    if not (HERE / "upstream" / "test_connector.py").exists():
        raise pytest.UsageError(
            "tests/conformance/waiters/upstream/ is empty: run `python tests/conformance/fetch_upstream.py "
            "tests/conformance/waiters` (or `nox -s conformance`) to fetch aiohttp 3.10.11's connector tests"
        )
    excluded_fix_tests = sorted(name for name in FIX_TESTS if EXCLUSIONS.reason_for(name, aiohttp_version))
    if excluded_fix_tests:
        raise pytest.UsageError(f"exclusions.py excludes tests of the fix: {', '.join(excluded_fix_tests)}")
    require_fix("waiters")


def pytest_report_header(config: pytest.Config) -> List[str]:
    status = aiohttp_waiterfix.status()
    return [
        f"conformance: upstream aiohttp 3.10.11 tests on aiohttp {aiohttp.__version__}, "
        f"Python {sys.version.split()[0]}",
        f"waiterfix: waiters applied={fix_applied(status, 'waiters')} ({status.reason})",
        f"shims: {', '.join(SHIMS) or 'none'}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    keep: List[pytest.Item] = []
    excluded: List[Tuple[pytest.Item, str]] = []
    for item in items:
        reason = EXCLUSIONS.reason_for(item.name, aiohttp_version)
        if reason is None:
            keep.append(item)
        else:
            excluded.append((item, reason))
    if excluded:
        config.hook.pytest_deselected(items=[item for item, _ in excluded])
        items[:] = keep
    config.stash[_EXCLUDED] = excluded


_EXCLUDED = pytest.StashKey[List[Tuple[pytest.Item, str]]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    # Also under -q, which hides the report header: say what ran, with which shims and exclusions.
    excluded = config.stash.get(_EXCLUDED, [])
    if excluded:
        terminalreporter.section(f"excluded for aiohttp {aiohttp.__version__} (conformance/waiters/exclusions.py)")
        for item, reason in excluded:
            terminalreporter.write_line(f"{item.name}: {reason}")
    status = aiohttp_waiterfix.status()
    terminalreporter.write_line(
        f"conformance: aiohttp {aiohttp.__version__}, waiters applied={fix_applied(status, 'waiters')}, "
        f"{len(excluded)} excluded, {len(SHIMS)} shims: {'; '.join(SHIMS) or 'none'}"
    )
