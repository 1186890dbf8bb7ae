"""The upstream 3.14.1 tests of the ``sni-key`` fix (aiohttp#12835).

They are the only tests collected (conftest.py extracts just them), and on
every affected release 3.9.0 - 3.14.0 *unpatched* (``AIOHTTP_WAITERFIX=0``)
both fail: the key has no ``server_hostname`` and compares equal across
names, and the ``second.example`` request reuses ``first.example``'s pooled
connection instead of failing verification.  Patched, both pass.
``nox -s conformance_unpatched`` checks the first statement on the oldest and
newest affected release.
"""

from __future__ import annotations

FIX_TESTS = frozenset(
    {
        # tests/test_client_request.py: the key of a request with an override holds it, and differs by name
        "test_connection_key_includes_server_hostname[pyloop]",
        # tests/test_client_functional.py: a pooled TLS connection is not reused for another server_hostname
        "test_server_hostname_override_not_reused[pyloop]",
    }
)
