"""Fix ``dns-trace``: a raising ``on_dns_cache_miss`` callback no longer wedges its host (aiohttp PR #10529).

With the DNS cache on, the first lookup of a ``(host, port)`` registers a
throttle entry that concurrent lookups of that host wait on, and then awaits
the ``send_dns_cache_miss`` trace signal *before* the ``try`` whose ``except``
hands its exception to those waiters and whose ``finally`` drops the entry.
A callback that raises there leaves the entry behind for the connector's
lifetime: every later request to that host, from any session sharing the
connector, waits on it forever.  aiohttp 3.11.14 sends the signal inside that
``try``; these functions do the same on the three shapes the code had before
(``_registry.DNS_TRACE`` says which replaces what, on which releases):

* A, 3.8.0-3.9.3: the throttle is inline in ``TCPConnector._resolve_host``
  (``_throttle_dns_events``, ``aiohttp.locks.EventResultOrError``);
* B, 3.9.4-3.10.9: ``_resolve_host_with_throttle`` holds the throttle, waiters
  and owner alike (still events);
* C, 3.10.10-3.11.13: ``_resolve_host_with_throttle`` is the owner's lookup
  only, its waiters are futures that ``_resolve_host`` registered.

Nothing else changes: every trace signal is sent at the same point and in the
same order (tracers such as OpenTelemetry build their spans from them),
concurrent lookups share one result or one exception, and the entry is dropped
unconditionally, all as upstream does.  Names the original functions read from
their module (``is_ip_address``, ``EventResultOrError``, ``set_result``,
``set_exception``) are read from ``aiohttp.connector`` at call time too, so
whatever patches that module reaches ours as well.
This module is imported only once ``aiohttp.connector`` has been imported.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Tuple

if TYPE_CHECKING:
    from typing import Protocol

    from aiohttp.abc import AbstractResolver, ResolveResult
    from aiohttp.connector import TCPConnector, _DNSCacheTable
    from aiohttp.tracing import Trace

    class EventThrottledConnector(Protocol):
        """What shapes A and B read from ``self``: a 3.8.0-3.10.9 ``TCPConnector`` (not the installed types)."""

        _loop: asyncio.AbstractEventLoop
        _family: Any
        _use_dns_cache: bool
        _resolver: AbstractResolver
        _cached_hosts: _DNSCacheTable
        _throttle_dns_events: Dict[Tuple[str, int], Any]


_connector: Any = importlib.import_module("aiohttp.connector")
"""The original functions' globals; typed loosely, as A and B's names are absent from newer releases.

From ``sys.modules``: the fixes are applied while ``aiohttp`` itself is still importing, before the
package has its ``connector`` attribute."""


# --------------------------------------------------------------------- A: 3.8.0-3.9.3


async def resolve_host_events_inline(
    self: EventThrottledConnector, host: str, port: int, traces: Optional[List[Trace]] = None
) -> List[Any]:
    """``TCPConnector._resolve_host`` of 3.8.0-3.9.3, its throttle being B's (the same code, inline there)."""
    if _connector.is_ip_address(host):
        return [{"hostname": host, "host": host, "port": port, "family": self._family, "proto": 0, "flags": 0}]

    if not self._use_dns_cache:
        return await _lookup(self, host, port, traces)

    key = (host, port)
    if key in self._cached_hosts and not self._cached_hosts.expired(key):
        cached = self._cached_hosts.next_addrs(key)  # read before any await (aiohttp#4014)
        if traces:
            for trace in traces:
                await trace.send_dns_cache_hit(host)
        return cached

    return await resolve_host_with_throttle_events(self, key, host, port, traces)


# -------------------------------------------------------------------- B: 3.9.4-3.10.9


async def resolve_host_with_throttle_events(
    self: EventThrottledConnector,
    key: Tuple[str, int],
    host: str,
    port: int,
    traces: Optional[Sequence[Trace]],
) -> List[Any]:
    """``TCPConnector._resolve_host_with_throttle`` of 3.9.4-3.10.9: wait for the lookup in flight, or do it."""
    events = self._throttle_dns_events
    if key in events:
        event = events[key]  # read before any await (aiohttp#4014)
        if traces:
            for trace in traces:
                await trace.send_dns_cache_hit(host)
        await event.wait()  # raises what the owner's lookup raised
    else:
        event = events[key] = _connector.EventResultOrError(self._loop)  # before any await (aiohttp#4014)
        try:
            await _cache_miss(host, traces)  # the fix: inside the try
            self._cached_hosts.add(key, await _lookup(self, host, port, traces))
            event.set()
        except BaseException as exc:
            event.set(exc=exc)  # the waiters raise the very same exception
            raise
        finally:
            events.pop(key)
    return self._cached_hosts.next_addrs(key)


# ------------------------------------------------------------------ C: 3.10.10-3.11.13


async def resolve_host_with_throttle_futures(
    self: TCPConnector,
    key: Tuple[str, int],
    host: str,
    port: int,
    futures: Set[asyncio.Future[None]],
    traces: Optional[Sequence[Trace]],
) -> List[ResolveResult]:
    """``TCPConnector._resolve_host_with_throttle`` of 3.10.10-3.11.13: the owner's lookup, in a shielded task."""
    try:
        await _cache_miss(host, traces)  # the fix: inside the try
        self._cached_hosts.add(key, await _lookup(self, host, port, traces))
        for future in futures:
            _connector.set_result(future, None)
    except BaseException as exc:
        for future in futures:
            _connector.set_exception(future, exc)  # the waiters raise the very same exception
        raise
    finally:
        self._throttle_dns_futures.pop(key)
    return self._cached_hosts.next_addrs(key)


# ----------------------------------------------------------------------------- shared


async def _cache_miss(host: str, traces: Optional[Sequence[Trace]]) -> None:
    """The ``on_dns_cache_miss`` signal; the fix is only where it is awaited (inside the owner's ``try``)."""
    if traces:
        for trace in traces:
            await trace.send_dns_cache_miss(host)


async def _lookup(self: Any, host: str, port: int, traces: Optional[Sequence[Trace]]) -> List[Any]:
    """The resolver's answer between the ``resolvehost_start`` and ``resolvehost_end`` signals (every shape)."""
    if traces:
        for trace in traces:
            await trace.send_dns_resolvehost_start(host)
    addrs: List[Any] = await self._resolver.resolve(host, port, family=self._family)
    if traces:
        for trace in traces:
            await trace.send_dns_resolvehost_end(host)
    return addrs
