"""The upstream 3.11.14 tests that cover the ``dns-trace`` fix.

On every affected release *unpatched* (``AIOHTTP_WAITERFIX=0``, with the
selection and shims of conftest.py) exactly these fail, by timeout: the
second lookup waits forever on the throttle entry the first one left behind.
Patched, they pass.  ``nox -s conformance_unpatched`` checks it.
"""

from __future__ import annotations

FIX_TESTS = frozenset(
    {
        # a raising send_dns_cache_miss trace: the first lookup raises, the second one resolves
        "test_connector_resolve_in_case_of_trace_cache_miss_exception[pyloop]",
    }
)
