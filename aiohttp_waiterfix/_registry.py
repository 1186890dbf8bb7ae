"""The fixes, each declared once.

Applying, reverting, ``status()``, fingerprint recording, the README's fix
table and the tests that check "everything replaced, everything restored" all
read these declarations; nothing else lists what a fix touches.  A fix's code
lives in ``aiohttp_waiterfix/fixes/<module>.py``, its tests in
``tests/test_fix_<module>.py``.  Importing this module imports no aiohttp.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

REPLACE = "replace"
"""Set the attribute to the fix's object (the original must be the code we know)."""
WRAP = "wrap"
"""Wrap the attribute with a ``wrapt`` function wrapper (the original keeps running inside)."""
ADD = "add"
"""Add an attribute the release does not have (refused if it has one)."""


class Change(NamedTuple):
    """One attribute of aiohttp that a fix replaces, wraps or adds."""

    kind: str
    """REPLACE, WRAP or ADD."""
    module: str
    """aiohttp's module, e.g. ``aiohttp.connector``."""
    owner: str
    """The class in that module, e.g. ``BaseConnector``."""
    name: str
    """The attribute, e.g. ``connect``."""
    using: str
    """The attribute of the fix's module that is installed (the wrapper, for WRAP)."""
    fingerprinted: bool = True
    """Refuse unless the original's code is recorded for this release (always False for ADD)."""

    @property
    def target(self) -> str:
        return f"{self.owner}.{self.name}"


class Variant(NamedTuple):
    """The changes a fix makes on the releases ``first``..``last``, whose code has one shape."""

    first: str
    last: str
    changes: Tuple[Change, ...]


class Fix(NamedTuple):
    """One fix: what it is, where upstream fixed it, and the changes it makes per code variant."""

    id: str
    """Stable short name: ``AIOHTTP_WAITERFIX_SKIP`` and ``status()`` use it."""
    title: str
    """What goes wrong without it, in a few words."""
    upstream: Tuple[str, ...]
    """aiohttp issue and pull-request numbers, e.g. ``("issue 9670", "pull 9671")``."""
    first_affected: str
    fixed_in: str
    """First aiohttp release with upstream's fix: the releases from ``first_affected`` to the one before it get ours."""
    module: str
    """Our code: ``aiohttp_waiterfix.fixes.<module>``."""
    variants: Tuple[Variant, ...]

    @property
    def refs(self) -> str:
        """``aiohttp#9670, aiohttp#9671``: how the README and ``status`` name upstream's issue and fix."""
        return ", ".join(f"aiohttp#{ref.split()[1]}" for ref in self.upstream)

    @property
    def links(self) -> Tuple[str, ...]:
        paths = {"issue": "issues", "pull": "pull"}
        return tuple(
            f"https://github.com/aio-libs/aiohttp/{paths[kind]}/{number}"
            for kind, number in map(str.split, self.upstream)
        )

    @property
    def last_affected(self) -> str:
        """The newest release we patch (the one before ``fixed_in``)."""
        return self.variants[-1].last

    def changes(self) -> Tuple[Change, ...]:
        """Every change of every variant, each attribute once (for tests and fingerprint recording)."""
        seen: Dict[Tuple[str, str], Change] = {}
        for variant in self.variants:
            for change in variant.changes:
                seen.setdefault((change.module, change.target), change)
        return tuple(seen.values())


def _connector(kind: str, name: str, using: str = "", *, owner: str = "BaseConnector", **kw: bool) -> Change:
    return Change(kind, "aiohttp.connector", owner, name, using or name, **kw)


WAITERS = Fix(
    id="waiters",
    title="cancelled requests wedge the connection pool (sticky timeouts)",
    upstream=("issue 9670", "pull 9671"),
    first_affected="3.8.0",
    fixed_in="3.10.11",
    module="waiters",
    variants=(
        Variant(
            "3.8.0",
            "3.10.10",
            (
                _connector(REPLACE, "connect"),
                _connector(REPLACE, "_available_connections"),
                _connector(REPLACE, "_release_waiter"),
                _connector(REPLACE, "_release_acquired"),
                _connector(WRAP, "_get", "wrap_get"),
                _connector(WRAP, "_close", "wrap_close"),
                # Its code changes in every release; the wrapper only sets _waiters after it.
                _connector(WRAP, "__init__", "wrap_init", fingerprinted=False),
                _connector(ADD, "_wait_for_available_connection", fingerprinted=False),
            ),
        ),
    ),
)

PAUSED_EOF = Fix(
    id="paused-eof",
    title="a pooled connection stays paused after a large buffered body (the next request on it hangs)",
    upstream=("issue 10169", "pull 10171"),
    first_affected="3.8.0",
    fixed_in="3.11.11",
    module="paused_eof",
    variants=(
        # StreamReader.feed_eof has one shape from 3.8.0 to 3.11.10; both parsers call it through the class.
        Variant("3.8.0", "3.11.10", (Change(WRAP, "aiohttp.streams", "StreamReader", "feed_eof", "wrap_feed_eof"),)),
    ),
)


def _tcp(name: str, using: str) -> Change:
    return _connector(REPLACE, name, using, owner="TCPConnector")


DNS_TRACE = Fix(
    id="dns-trace",
    title="a raising on_dns_cache_miss trace callback hangs every later request to that host",
    upstream=("pull 10529",),  # no issue upstream; backported to 3.11 as pull 10559
    first_affected="3.8.0",
    fixed_in="3.11.14",
    module="dns_trace",
    # The cache-miss signal is awaited before the try that shares errors with the waiters and drops
    # the throttle entry; one replacement per shape of the DNS throttle code.
    variants=(
        # The throttle is inline in _resolve_host, with _throttle_dns_events.
        Variant("3.8.0", "3.9.3", (_tcp("_resolve_host", "resolve_host_events_inline"),)),
        # aiohttp#8163 moved it, waiters and owner, into _resolve_host_with_throttle (still events).
        Variant("3.9.4", "3.10.9", (_tcp("_resolve_host_with_throttle", "resolve_host_with_throttle_events"),)),
        # aiohttp#9454: waiters are futures registered by _resolve_host; only the owner's lookup is here.
        Variant("3.10.10", "3.11.13", (_tcp("_resolve_host_with_throttle", "resolve_host_with_throttle_futures"),)),
    ),
)

SNI_KEY = Fix(
    id="sni-key",
    title="pooled TLS connections verified for one server_hostname are reused for another (security)",
    upstream=("pull 12835",),
    first_affected="3.9.0",  # 3.8 has no per-request server_hostname
    fixed_in="3.14.1",
    module="sni_key",
    variants=(
        # The property is replaced by ours, which calls aiohttp's own getter (see fixes/sni_key.py: not WRAP,
        # whose unbound call of a property getter costs ~0.8 us a key); the key class differs.
        Variant(
            "3.9.0",
            "3.10.11",
            (Change(REPLACE, "aiohttp.client_reqrep", "ClientRequest", "connection_key", "connection_key_attrs"),),
        ),
        Variant(
            "3.11.0",
            "3.14.0",
            (Change(REPLACE, "aiohttp.client_reqrep", "ClientRequest", "connection_key", "connection_key_namedtuple"),),
        ),
    ),
)

FIXES: Tuple[Fix, ...] = (WAITERS, PAUSED_EOF, DNS_TRACE, SNI_KEY)
"""Every fix, in the order they are applied."""

FIX_IDS: Tuple[str, ...] = tuple(fix.id for fix in FIXES)


def owners() -> Tuple[Tuple[str, str], ...]:
    """``(module, class)`` of every class any fix changes, on any release, sorted."""
    return tuple(sorted({(change.module, change.owner) for fix in FIXES for change in fix.changes()}))
