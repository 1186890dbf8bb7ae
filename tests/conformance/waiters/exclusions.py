"""Upstream 3.10.11 connector tests we do not run, per release, and why.

Only tests of aiohttp changes that are no part of the waiter fix (aiohttp#9671,
with #9623's slot accounting) belong here: the patch replaces six connector
methods, everything else in an older release stays as that release shipped it,
so a test of a later feature or fix elsewhere in the connector cannot pass.
Each entry names the change (and the release that brought it) the test needs.
Every entry was seen failing on the releases it covers, and passing from the
release after ``last`` on (``nox -s conformance_all`` checks both directions
only as far as failures go: an exclusion that is no longer needed is harmless
but should be removed).
"""

from __future__ import annotations

from typing import Optional, Tuple

from harness import Exclusion, exclusion_for
from packaging.version import Version

EXCLUSIONS: Tuple[Exclusion, ...] = (
    # 3.10.11 (#9726/#9736): enable_cleanup_closed is ignored, with a DeprecationWarning, on CPython
    # versions that fixed the SSL-transport leak (NEEDS_CLEANUP_CLOSED).  Older releases always clean up
    # when asked (our shim sets NEEDS_CLEANUP_CLOSED=True to say so); this test patches it False.
    Exclusion("test_cleanup_closed_is_noop_on_fixed_cpython", "3.8.0", "3.10.10",
              "3.10.11's NEEDS_CLEANUP_CLOSED gate (#9726), not part of the waiter fix"),
    # 3.10.10 (#9454): DNS throttling rewritten around _throttle_dns_futures; older releases
    # have _throttle_dns_events.  Resolver code, untouched by the patch.
    Exclusion("test_connector_throttle_trace_race", "3.8.0", "3.10.9",
              "DNS throttling rewrite of 3.10.10 (#9454: _throttle_dns_futures)"),
    # 3.10.9 (#7342): a per-address connect timeout moves on to the next resolved address
    # instead of failing the request.  _create_direct_connection, untouched by the patch.
    Exclusion("test_tcp_connector_multiple_hosts_one_timeout", "3.8.0", "3.10.8",
              "try the next address after a connect timeout: 3.10.9 (#7342)"),
    # 3.10.6 (#8967): host resolution runs in tasks tracked in _resolve_host_tasks, which close()
    # cancels.  Resolver code, untouched by the patch.
    Exclusion("test_close_cancels_resolve_host", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    Exclusion("test_multiple_dns_resolution_requests_success", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    Exclusion("test_multiple_dns_resolution_requests_failure", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    Exclusion("test_multiple_dns_resolution_requests_cancelled", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    Exclusion("test_multiple_dns_resolution_requests_first_cancelled", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    Exclusion("test_multiple_dns_resolution_requests_first_fails_second_successful", "3.8.0", "3.10.5",
              "_resolve_host_tasks: 3.10.6 (#8967)"),
    # 3.10.6 (#9029): SSL contexts are made once at import by a module-level _make_ssl_context
    # (before: a TCPConnector static method).  TLS set-up, untouched by the patch.
    Exclusion("test_default_ssl_context_creation_without_ssl", "3.8.0", "3.10.5",
              "module-level _make_ssl_context: 3.10.6 (#9029)"),
    # 3.10.3 (#8672) made _get_ssl_context a coroutine that builds the context in an executor, per
    # connector; 3.10.6 (#9029) made it synchronous again, returning the module-level contexts.
    # On 3.10.3-3.10.5 these tests compare a coroutine with a context.
    Exclusion("test___get_ssl_context1", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test___get_ssl_context2", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test___get_ssl_context3", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test___get_ssl_context4", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test___get_ssl_context5", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test___get_ssl_context6", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    Exclusion("test_ssl_context_once", "3.10.3", "3.10.5", "async _get_ssl_context of 3.10.3-3.10.5 (#8672)"),
    # 3.10.2 (#8632): connectors declare allowed_protocol_schema_set (npipe/tcp/unix URLs).
    # Request validation, untouched by the patch.
    Exclusion("test_tcp_connector_allowed_protocols", "3.8.0", "3.10.1",
              "allowed_protocol_schema_set: 3.10.2 (#8632)"),
    Exclusion("test_base_connector_allows_high_level_protocols", "3.8.0", "3.10.1",
              "allowed_protocol_schema_set: 3.10.2 (#8632)"),
    Exclusion("test_unix_connector", "3.8.0", "3.10.1", "allowed_protocol_schema_set: 3.10.2 (#8632)"),
    # 3.10.0 (#7954): sockets are opened by aiohappyeyeballs.start_connection (happy_eyeballs_delay,
    # interleave, one sock= per attempt).  3.9.x calls loop.create_connection(host=...) itself.
    Exclusion("test_tcp_connector_happy_eyeballs", "3.8.0", "3.9.5", "happy eyeballs: 3.10.0 (#7954)"),
    Exclusion("test_tcp_connector_interleave", "3.8.0", "3.9.5", "happy eyeballs: 3.10.0 (#7954)"),
    Exclusion("test_tcp_connector_family_is_respected", "3.8.0", "3.9.5", "happy eyeballs: 3.10.0 (#7954)"),
    Exclusion("test_tcp_connector_multiple_hosts_errors", "3.8.0", "3.9.5", "happy eyeballs: 3.10.0 (#7954)"),
    # 3.9.3 (#8097/#8098): TCPConnector(ssl=None) is normalised to ssl=True.
    Exclusion("test_ssl_none", "3.8.0", "3.9.2", "TCPConnector(ssl=None) -> True: 3.9.3 (#8097)"),
    # 3.9.2 (#7698): ssl=True means "default verified context" and is the default; before it the
    # default was None and any non-None value meant "unverified".
    Exclusion("test_tcp_connector_ctor", "3.8.0", "3.9.1", "ssl=True default: 3.9.2 (#7698)"),
    Exclusion("test___get_ssl_context3", "3.8.0", "3.9.1", "ssl=True means verified: 3.9.2 (#7698)"),
    Exclusion("test___get_ssl_context6", "3.8.0", "3.9.1", "ssl=True means verified: 3.9.2 (#7698)"),
    Exclusion("test_ssl_context_once", "3.8.0", "3.9.1", "ssl=True means verified: 3.9.2 (#7698)"),
    # 3.9.0 (#7114): ClientRequest(server_hostname=...) to override the TLS server name.
    Exclusion("test_tcp_connector_server_hostname_override", "3.8.0", "3.8.6", "server_hostname: 3.9.0 (#7114)"),
    # 3.9.0 (#3636): trailing dots of fully-qualified host names are stripped for TLS (SNI, verification).
    *(
        Exclusion(f"test_tcp_connector_do_not_raise_connector_ssl_error[pyloop-{param}]", "3.8.0", "3.8.6",
                  "FQDN trailing dots stripped for TLS: 3.9.0 (#3636)")
        for param in ("fully-qualified domain name", "fully-qualified domain name with multiple trailing dots",
                      "idna fully-qualified domain name")
    ),
    # 3.9.0 (#7014): the DNS cache with ttl_dns_cache=0 expires entries at once.
    Exclusion("test_always_expire", "3.8.0", "3.8.6", "ttl_dns_cache=0 expiry: 3.9.0 (#7014)"),
)  # fmt: skip


def reason_for(name: str, version: Version) -> Optional[str]:
    """Why the test ``name`` (pytest's ``item.name``) is excluded on ``version``, or None."""
    exclusion = exclusion_for(EXCLUSIONS, name, str(version))
    return exclusion.reason if exclusion else None
