"""Which of aiohttp 3.11.14's connector tests the ``dns-trace`` conformance run keeps, per release, and why.

The fix replaces one DNS function (``_registry.DNS_TRACE``), so the run keeps
upstream's tests of DNS resolution, the DNS cache, the DNS throttle and their
trace signals (``SELECTED``), the test of the fix among them.  Everything else
in the file tests other parts of the connector: the ``waiters`` conformance
runs 3.10.11's connector tests on the releases that need that fix.
``EXCLUSIONS`` lists the selected tests that need a later aiohttp change the
fix is no part of; each was seen failing on the releases it covers, patched
and unpatched alike, and passing from the release after ``last`` on.  No test
of the fix (fix_tests.py) is ever excluded.
"""

from __future__ import annotations

from typing import Optional, Tuple

from harness import Exclusion, exclusion_for
from packaging.version import Version

SELECTED: Tuple[str, ...] = (
    "test_tcp_connector_resolve_host",
    "test_tcp_connector_dns_cache_not_expired",
    "test_tcp_connector_dns_cache_forever",
    "test_tcp_connector_use_dns_cache_disabled",
    "test_tcp_connector_dns_throttle_requests",
    "test_tcp_connector_dns_throttle_requests_exception_spread",
    "test_tcp_connector_dns_throttle_requests_cancelled_when_close",
    "test_tcp_connector_cancel_dns_error_captured",
    "test_tcp_connector_dns_tracing",
    "test_tcp_connector_dns_tracing_cache_disabled",
    "test_tcp_connector_dns_tracing_throttle_requests",
    "test_dns_error",
    "test_tcp_connector_clear_dns_cache",
    "test_tcp_connector_clear_dns_cache_bad_args",
    "test_close_cancels_resolve_host",
    "test_multiple_dns_resolution_requests_success",
    "test_multiple_dns_resolution_requests_failure",
    "test_multiple_dns_resolution_requests_cancelled",
    "test_multiple_dns_resolution_requests_first_cancelled",
    "test_multiple_dns_resolution_requests_first_fails_second_successful",
    "test_default_use_dns_cache",
    "test_resolver_not_called_with_address_is_ip",
    "test_connector_cache_trace_race",
    "test_connector_throttle_trace_race",
    "test_connector_resolve_in_case_of_trace_cache_miss_exception",
    "TestDNSCacheTable",  # a class: all of its tests
)
"""Test functions (or classes) of upstream's tests/test_connector.py that exercise DNS resolution."""

NOT_SELECTED = (
    "not a DNS test: aiohttp#10529 changed only the DNS throttle (the connector's other tests are the waiters "
    "conformance's, tests/conformance/waiters)"
)


EXCLUSIONS: Tuple[Exclusion, ...] = (
    # 3.10.10 (#9454): the throttle's waiters became futures in _throttle_dns_futures, which this test fills
    # itself; older releases have _throttle_dns_events.
    Exclusion("test_connector_throttle_trace_race", "3.8.0", "3.10.9",
              "DNS throttle rewritten around _throttle_dns_futures: 3.10.10 (#9454)"),
    # 3.10.6 (#8967): host resolution runs in tasks tracked in _resolve_host_tasks, which close() cancels;
    # the multiple_dns_resolution tests also mock aiohttp.connector.aiohappyeyeballs (3.10.0).
    *(
        Exclusion(name, "3.8.0", "3.10.5", "_resolve_host_tasks: 3.10.6 (#8967)")
        for name in (
            "test_close_cancels_resolve_host",
            "test_multiple_dns_resolution_requests_success",
            "test_multiple_dns_resolution_requests_failure",
            "test_multiple_dns_resolution_requests_cancelled",
            "test_multiple_dns_resolution_requests_first_cancelled",
            "test_multiple_dns_resolution_requests_first_fails_second_successful",
        )
    ),
    # 3.9.0 (#7014): the DNS cache with ttl_dns_cache=0 expires entries at once.
    Exclusion("test_always_expire", "3.8.0", "3.8.6", "ttl_dns_cache=0 expiry: 3.9.0 (#7014)"),
)  # fmt: skip


def _selected(name: str, nodeid: str) -> bool:
    base = name.split("[", 1)[0]
    return any(base == test or f"::{test}::" in nodeid for test in SELECTED)


def reason_for(name: str, nodeid: str, version: Version) -> Optional[str]:
    """Why the test ``name`` (pytest's ``item.name``) is left out on ``version``, or None to run it."""
    if not _selected(name, nodeid):
        return NOT_SELECTED
    exclusion = exclusion_for(EXCLUSIONS, name, str(version))
    return f"{exclusion.reason} [excluded {exclusion.first}-{exclusion.last}]" if exclusion else None
