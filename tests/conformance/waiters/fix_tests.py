"""The upstream 3.10.11 connector tests that cover the waiter fix.

On every affected release *unpatched* (``AIOHTTP_WAITERFIX=0``, with our
shims and exclusions) exactly these tests fail, and patched they pass: that
is what makes the conformance run meaningful.  ``nox -s conformance_unpatched``
checks both halves of the first statement on the oldest and newest affected
release.  (Raw, without shims, unpatched 3.10.10 fails 26 tests: these 20
-- one of them, ``test_get_expired_ssl``, errors in its NEEDS_CLEANUP_CLOSED
fixture first -- plus 6 that need NEEDS_CLEANUP_CLOSED only.)
"""

from __future__ import annotations

FIX_TESTS = frozenset(
    {
        # _get(key, traces) is a coroutine that marks the connection acquired
        "test_get[pyloop]",
        "test_get_unconnected_proto[pyloop]",
        "test_get_unconnected_proto_ssl[pyloop]",
        "test_get_expired[pyloop]",
        "test_get_expired_ssl[pyloop]",
        "test_get_pop_empty_conns[pyloop]",
        # waiters in OrderedDicts keyed by future; _release_waiter pops the first live one
        "test_release_waiter_no_limit[pyloop]",
        "test_release_waiter_first_available[pyloop]",
        "test_release_waiter_release_first[pyloop]",
        "test_release_waiter_skip_done_waiter[pyloop]",
        "test_release_waiter_per_host[pyloop]",
        "test_release_waiter_no_available[pyloop]",
        # _release_acquired drops empty per-host sets
        "test__release_acquired_per_host2[pyloop]",
        "test__release_acquired_per_host3[pyloop]",
        # a raising trace callback releases the slot / waiter it held
        "test_exception_during_connetion_create_tracing[pyloop-on_connection_create_start]",
        "test_exception_during_connection_queued_tracing[pyloop]",
        "test_exception_during_connection_reuse_tracing[pyloop]",
        # a waiter removes only its own future
        "test_connector_does_not_remove_needed_waiters[pyloop]",
        # _available_connections honours limit and limit_per_host together (#9623)
        "test_available_connections_with_limit_per_host",
        "test_available_connections_without_limit_per_host[10]",
    }
)
