"""Fix ``waiters``: aiohttp 3.10.11's cancellation-safe connection waiters, for older releases.

``_registry.WAITERS`` says which function here replaces, wraps or is added to
which method of ``aiohttp.connector.BaseConnector``.  They follow
3.10.11 (aiohttp PR #9671 and #9623) line for line in behaviour, with two
deliberate differences:

* no ``ceil_timeout`` in ``connect()``: the affected releases' ``client.py``
  already wraps ``connector.connect()`` in it (#9600 moved it later);
* pooled-connection timestamps use ``loop.time()``, the clock the affected
  releases' ``_release()`` and ``_cleanup()`` write with.

Our improvements over 3.10.11 are marked ``# waiterfix:`` with one line of why.
This module is imported only once ``aiohttp.connector`` has been imported.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict, defaultdict, deque
from typing import TYPE_CHECKING, Any, Callable, DefaultDict, List, Optional, cast

from aiohttp.client_exceptions import ClientConnectionError
from aiohttp.connector import Connection, _TransportPlaceholder

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest, ConnectionKey
    from aiohttp.connector import BaseConnector
    from aiohttp.tracing import Trace

    _FutureQueue = OrderedDict["asyncio.Future[None]", None]
else:
    _FutureQueue = OrderedDict


class WaiterQueue(_FutureQueue):
    """A FIFO of waiter futures with O(1) removal (an ordered set).

    It also speaks the ``deque`` API the original methods use, so a
    ``connect()`` already running in the original code when the patch is
    applied, or any call after ``revert()``, keeps working on it.
    """

    __slots__ = ()

    def append(self, waiter: asyncio.Future[None]) -> None:
        self[waiter] = None

    def popleft(self) -> asyncio.Future[None]:
        return self.popitem(last=False)[0]

    def remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            del self[waiter]
        except KeyError:
            raise ValueError("waiter not queued") from None


Waiters = DefaultDict["ConnectionKey", "OrderedDict[asyncio.Future[None], None]"]


def new_waiters() -> Waiters:
    return defaultdict(WaiterQueue)


def waiter_queues(connector: BaseConnector) -> Waiters:
    """The connector's waiters, converted once if it still holds the old deques.

    Connectors created before the patch was applied have ``defaultdict(deque)``;
    the futures keep their order, and the old code can still use the result.
    """
    waiters: Any = connector._waiters
    if getattr(waiters, "default_factory", None) is deque:  # keep in step with _release_waiter
        converted = new_waiters()
        for key, queue in waiters.items():
            converted[key] = WaiterQueue.fromkeys(queue)
        connector._waiters = waiters = converted  # type: ignore[assignment]
    return cast(Waiters, waiters)


async def connect(
    self: BaseConnector,
    req: ClientRequest,
    traces: List[Trace],
    timeout: Any,
) -> Connection:
    """Get from pool or create new connection."""
    key = req.connection_key
    # Module-level calls (not self._get / self._wait_for_...): a connect() that
    # is suspended here when revert() runs must not resume into the old API.
    if (conn := await get_pooled(self, key, traces)) is not None:
        return conn

    if self._available_connections(key) <= 0:
        await _wait_for_available_connection(self, key, traces)
        if (conn := await get_pooled(self, key, traces)) is not None:
            return conn

    placeholder = cast("ResponseHandler", _TransportPlaceholder())
    self._acquired.add(placeholder)
    self._acquired_per_host[key].add(placeholder)
    try:
        if traces:
            for trace in traces:
                await trace.send_connection_create_start()
        proto = await self._create_connection(req, traces, timeout)
        if traces:
            try:
                for trace in traces:
                    await trace.send_connection_create_end()
            except BaseException:
                # waiterfix: 3.10.11 leaves this new protocol open and unowned.
                proto.close()
                raise
    except BaseException:
        self._release_acquired(key, placeholder)
        raise
    else:
        if self._closed:
            proto.close()
            raise ClientConnectionError("Connector is closed.")

    # No await from here on: the protocol must never be left acquired by a
    # cancellation between swapping it in and returning it.
    acquired_per_host = self._acquired_per_host[key]
    self._acquired.remove(placeholder)
    acquired_per_host.remove(placeholder)
    self._acquired.add(proto)
    acquired_per_host.add(proto)
    return Connection(self, key, proto, self._loop)


async def _wait_for_available_connection(self: BaseConnector, key: ConnectionKey, traces: List[Trace]) -> None:
    """Wait for an available connection slot."""
    waiters = waiter_queues(self)
    attempts = 0
    while True:
        if self._closed:
            # waiterfix: nothing wakes waiters of a closed connector (and its
            # stale per-host counts can keep a slot "taken"): fail now, not never.
            raise ClientConnectionError("Connector is closed.")
        fut: asyncio.Future[None] = self._loop.create_future()
        keyed_waiters = waiters[key]
        keyed_waiters[fut] = None
        if attempts:
            # Re-queued after a wake-up that found no slot: go first, or a
            # stream of new arrivals could starve this request.
            keyed_waiters.move_to_end(fut, last=False)

        try:
            if traces:
                for trace in traces:
                    await trace.send_connection_queued_start()
            await fut
            if traces:
                for trace in traces:
                    await trace.send_connection_queued_end()
        except BaseException:
            if fut.done() and not fut.cancelled():
                # waiterfix: we were woken for a free slot but are leaving
                # (cancelled, timed out, a trace raised); 3.10.11 drops the
                # wake-up and the slot idles while others queue.
                self._release_waiter()
            raise
        finally:
            keyed_waiters.pop(fut, None)
            if not self._waiters.get(key, True):
                del self._waiters[key]

        if self._available_connections(key) > 0:
            return
        # waiterfix: woken but the slot is gone (taken by a new arrival, or the
        # wake-up was meant for another host whose slot is still free): pass the
        # wake-up on before queueing again, or that free slot may idle forever.
        # Only another host can use it (ours has no slot): skip the scan if none waits.
        if len(self._waiters) > (key in self._waiters):
            self._release_waiter()
        attempts += 1


async def get_pooled(self: BaseConnector, key: ConnectionKey, traces: List[Trace]) -> Optional[Connection]:
    """Get next reusable connection for the key or None.

    The connection will be marked as acquired.
    """
    try:
        conns = self._conns[key]
    except KeyError:
        return None

    t1 = self._loop.time()
    while conns:
        proto, t0 = conns.pop()
        if proto.is_connected() and t1 - t0 <= self._keepalive_timeout:
            if not conns:
                # The very last connection was reclaimed: drop the key
                del self._conns[key]
            self._acquired.add(proto)
            self._acquired_per_host[key].add(proto)
            if traces:
                for trace in traces:
                    try:
                        await trace.send_connection_reuseconn()
                    except BaseException:
                        self._release_acquired(key, proto)
                        # waiterfix: 3.10.11 leaves the popped protocol open
                        # and in no pool; close it so nothing leaks.
                        proto.close()
                        raise
            return Connection(self, key, proto, self._loop)

        # Connection cannot be reused, close it
        transport = proto.transport
        proto.close()
        if not self._cleanup_closed_disabled and key.is_ssl:
            self._cleanup_closed_transports.append(transport)

    # No more connections: drop the key
    del self._conns[key]
    return None


def wrap_get(wrapped: Callable[..., Any], instance: BaseConnector, args: Any, kwargs: Any) -> Any:
    """``_get`` wrapper: ``await _get(key, traces)`` as in 3.10.11.

    A ``connect()`` that was already running in the original code when the
    fix was applied calls ``self._get(key)`` and expects the old synchronous
    result: that call still runs the original.
    """
    if len(args) + len(kwargs) < 2:
        return wrapped(*args, **kwargs)
    return get_pooled(instance, *args, **kwargs)


def _available_connections(self: BaseConnector, key: ConnectionKey) -> int:
    """Return number of available connections.

    The limit, limit_per_host and the connection key are taken into account.
    If it returns less than 1 means that there are no connections available.
    """
    total_remain = 1
    if self._limit and (total_remain := self._limit - len(self._acquired)) <= 0:
        return total_remain

    if host_remain := self._limit_per_host:
        if acquired := self._acquired_per_host.get(key):
            host_remain -= len(acquired)
        if total_remain > host_remain:
            return host_remain

    return total_remain


def _release_waiter(self: BaseConnector) -> None:
    """Wake the first waiter of a randomly chosen host that has a free slot."""
    waiters: Any = self._waiters
    if not waiters:
        return
    if getattr(waiters, "default_factory", None) is deque:  # inline check: this runs on every release
        waiters = waiter_queues(self)
    # Shuffled so that no host is always served first.
    queues = list(waiters)
    random.shuffle(queues)
    for key in queues:
        if self._available_connections(key) < 1:
            continue
        keyed_waiters = waiters[key]
        while keyed_waiters:
            waiter, _ = keyed_waiters.popitem(last=False)
            if not waiter.done():
                waiter.set_result(None)
                return


def _release_acquired(self: BaseConnector, key: ConnectionKey, proto: ResponseHandler) -> None:
    """Release acquired connection."""
    if self._closed:
        # acquired connection is already released on connector closing
        return

    self._acquired.discard(proto)
    if conns := self._acquired_per_host.get(key):
        conns.discard(proto)
        if not conns:
            del self._acquired_per_host[key]
    self._release_waiter()


def wrap_init(wrapped: Callable[..., None], instance: BaseConnector, args: Any, kwargs: Any) -> None:
    """``__init__`` wrapper: new connectors get the ordered-set waiter queues."""
    wrapped(*args, **kwargs)
    instance._waiters = new_waiters()  # type: ignore[assignment]


def wrap_close(wrapped: Callable[[], None], instance: BaseConnector, args: Any, kwargs: Any) -> None:
    """``_close`` wrapper: cancel queued waiters, as 3.10.11 does.

    The original clears the waiters without waking them: their requests would
    hang until their own timeout.
    """
    pending = [fut for queue in instance._waiters.values() for fut in queue]
    try:
        wrapped(*args, **kwargs)
    finally:
        for fut in pending:
            try:
                fut.cancel()
            except RuntimeError:
                # waiterfix: 3.10.11 raises here when the loop is already
                # closed; the future is cancelled all the same.
                pass
