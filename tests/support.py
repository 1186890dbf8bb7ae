"""Helpers shared by the connector tests (and the hypothesis harness).

No pytest-asyncio: every test body is a coroutine run by :func:`run` in a
fresh event loop, bounded by a timeout, so a wedged connector fails the test
instead of hanging it.  Works on Python 3.8-3.13 and aiohttp 3.8.0-3.14.x.

API (keep it small):

* ``run(coro_fn, *args, timeout=RUN_TIMEOUT)`` -- run ``coro_fn(*args)`` in a new loop.
* ``make_connector(limit=1, limit_per_host=0, creator=None, **kw) -> (connector, creator)``
  -- a ``BaseConnector`` whose ``_create_connection`` is a :class:`FakeCreator`.
  Call it inside the running loop.
* :class:`FakeCreator` -- the fake ``_create_connection``: returns :class:`FakeProtocol`,
  can block on an ``asyncio.Event`` or raise.
* :class:`FakeRequest` / ``make_key(host)`` -- a request with a real ``ConnectionKey``.
* :class:`FakeTrace` -- records the ``send_connection_*`` signals; can be told to raise
  or to block on one of them.
* ``request(connector, host, traces=())`` -- ``connector.connect(...)`` with the usual arguments.
* ``settle()``, ``wait_done(tasks)``, ``serve_all(tasks)`` -- bounded waiting.
* ``acquired_count``, ``waiter_count``, ``pooled_count``, ``assert_idle`` -- connector state.
* ``AIOHTTP_VERSION``, ``PATCHED``, ``fixed_order_shuffle(monkeypatch)``.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import aiohttp
from aiohttp import connector as aiohttp_connector
from aiohttp.client_reqrep import ClientRequest, ConnectionKey

# Activation patches at once when aiohttp.connector is already imported.
import aiohttp_waiterfix
from aiohttp_waiterfix._status import fix_applied

RUN_TIMEOUT = 20.0
"""Hard bound of one :func:`run`; a test that reaches it has hung."""
WAIT = 2.0
"""Bound of one 'this should happen now' wait.  Met in microseconds when the
connector works; only a broken connector pays it."""

AIOHTTP_VERSION: Tuple[int, ...] = tuple(int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit())
PATCHED: bool = fix_applied(aiohttp_waiterfix.status(), "waiters")
"""True when our waiter fix is in place in this process (aiohttp < 3.10.11 and not switched off)."""

SIGNALS = (
    "connection_queued_start",
    "connection_queued_end",
    "connection_create_start",
    "connection_create_end",
    "connection_reuseconn",
)


# --------------------------------------------------------------------------- loop


def run(coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float = RUN_TIMEOUT) -> Any:
    """Run ``coro_fn(*args)`` in a fresh event loop; a hang becomes an AssertionError."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro_fn(*args), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"test did not finish within {timeout} s (hung)") from None

    return asyncio.run(bounded())


async def settle(turns: int = 10) -> None:
    """Let the loop run a few turns (every ready callback gets to run)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def wait_done(tasks: Iterable[asyncio.Future[Any]], timeout: float = WAIT) -> bool:
    """Wait until all ``tasks`` are done or ``timeout`` passed; True if all are done.

    Never cancels anything: the caller asserts on the result.
    """
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    await settle(2)
    return all(t.done() for t in tasks)


async def serve_all(
    tasks: Sequence[asyncio.Future[Any]],
    timeout: float = WAIT,
    close: bool = True,
    order: Optional[List[Any]] = None,
) -> None:
    """Let every ``connect()`` task in ``tasks`` finish, releasing each connection it got.

    Each obtained ``Connection`` is closed (``close=True``, the protocol is not
    pooled) or released to the pool, which frees its slot for the next one.
    Failed/cancelled tasks are fine.  ``order`` (if given) receives the tasks in
    the order they got their connection.  Raises AssertionError naming how many
    tasks were still waiting when nothing progressed for ``timeout`` seconds.
    """
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise AssertionError(f"{len(pending)} of {len(tasks)} requests never got a connection (wedged)")
        for task in sorted(done, key=lambda t: tasks.index(t)):
            if task.cancelled() or task.exception() is not None:
                continue
            if order is not None:
                order.append(task)
            conn = task.result()
            if close:
                conn.close()
            else:
                conn.release()
    await settle()


def spawn(coro: Awaitable[Any]) -> asyncio.Task[Any]:
    return asyncio.ensure_future(coro)


# ---------------------------------------------------------------------- requests


def _ssl_default() -> Any:
    # ClientRequest's ssl default is None up to 3.9.1 and True from 3.9.2.
    try:
        param = inspect.signature(ClientRequest.__init__).parameters.get("ssl")
    except (TypeError, ValueError):  # pragma: no cover
        param = None
    if param is None or param.default is inspect.Parameter.empty:
        return True
    return param.default


_SSL_DEFAULT = _ssl_default()
_KEY_CACHE: Dict[Tuple[str, int], Any] = {}


def _key_fields() -> List[str]:
    fields = getattr(ConnectionKey, "_fields", None)  # NamedTuple (3.11+)
    if fields is not None:
        return list(fields)
    attrs_fields = getattr(ConnectionKey, "__attrs_attrs__", None)  # attrs (3.8-3.10)
    if attrs_fields is not None:
        return [f.name for f in attrs_fields]
    import dataclasses

    return [f.name for f in dataclasses.fields(ConnectionKey)]  # pragma: no cover


def make_key(host: str = "h1", port: int = 80) -> Any:
    """A real ``aiohttp.client_reqrep.ConnectionKey`` for plain HTTP to ``host:port``."""
    cached = _KEY_CACHE.get((host, port))
    if cached is not None:
        return cached
    values = {
        "host": host,
        "port": port,
        "is_ssl": False,
        "ssl": _SSL_DEFAULT,
        "proxy": None,
        "proxy_auth": None,
        "proxy_headers_hash": None,
        "server_hostname": None,
    }
    key = ConnectionKey(**{name: values[name] for name in _key_fields() if name in values})
    _KEY_CACHE[(host, port)] = key
    return key


class FakeRequest:
    """What ``BaseConnector.connect()`` reads from a ``ClientRequest``."""

    def __init__(self, host: str = "h1", port: int = 80) -> None:
        self.host = host
        self.port = port
        self.connection_key = make_key(host, port)
        self.ssl = _SSL_DEFAULT
        self.proxy = None
        self.proxy_auth = None
        self.proxy_headers = None
        self.server_hostname = None

    def is_ssl(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<FakeRequest {self.host}:{self.port}>"


# --------------------------------------------------------------------- protocols


class FakeProtocol:
    """Stands in for ``ResponseHandler``: just what the connector touches."""

    def __init__(self, host: str = "h1", number: int = 0) -> None:
        self.host = host
        self.number = number
        self.should_close = False
        self.transport = None
        self.close_calls = 0

    @property
    def closed(self) -> Optional[asyncio.Future[None]]:
        """A finished future, like ``ResponseHandler.closed`` once closed: ``close()`` awaits it.

        aiohttp 3.12.4 and 3.12.6 gather every protocol's ``closed`` unchecked (None raises TypeError);
        3.11 and 3.12.7+ skip a falsy one.  Outside a loop there is nothing to await: None.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
        return done

    def is_connected(self) -> bool:
        return self.close_calls == 0

    def close(self) -> None:
        self.close_calls += 1

    def abort(self) -> None:
        self.close_calls += 1

    @property
    def is_closed(self) -> bool:
        return self.close_calls > 0

    def __repr__(self) -> str:
        return f"<FakeProtocol {self.host}#{self.number}{' closed' if self.is_closed else ''}>"


class FakeCreator:
    """The fake ``_create_connection(req, traces, timeout)``.

    * ``block``: an ``asyncio.Event`` every creation waits for (``None``: no wait);
    * ``error``: an exception instance (or factory) raised by every creation, after ``block``;
    * ``created``: every protocol returned, in order; ``calls``: creations started.
    """

    def __init__(self) -> None:
        self.block: Optional[asyncio.Event] = None
        self.error: Any = None
        self.created: List[FakeProtocol] = []
        self.calls = 0

    async def __call__(self, req: Any, traces: Any, timeout: Any) -> FakeProtocol:
        self.calls += 1
        if self.block is not None:
            await self.block.wait()
        if self.error is not None:
            error = self.error() if callable(self.error) else self.error
            raise error
        proto = FakeProtocol(req.host, len(self.created))
        self.created.append(proto)
        return proto

    @property
    def open_protocols(self) -> List[FakeProtocol]:
        return [p for p in self.created if not p.is_closed]


def make_connector(
    limit: int = 1, limit_per_host: int = 0, creator: Optional[FakeCreator] = None, **kwargs: Any
) -> Tuple[Any, FakeCreator]:
    """A ``BaseConnector`` with a fake ``_create_connection`` (call inside the running loop)."""
    connector = aiohttp.BaseConnector(limit=limit, limit_per_host=limit_per_host, **kwargs)
    creator = creator if creator is not None else FakeCreator()
    connector._create_connection = creator
    return connector, creator


def request(connector: Any, host: str = "h1", traces: Sequence[Any] = ()) -> Awaitable[Any]:
    """``connector.connect()`` for a request to ``host`` (no connect timeout)."""
    return connector.connect(FakeRequest(host), list(traces), aiohttp.ClientTimeout())


# ------------------------------------------------------------------------- state


def acquired_count(connector: Any) -> int:
    """Slots held: real protocols and creation placeholders."""
    return len(connector._acquired)


def acquired_per_host(connector: Any, host: str = "h1") -> int:
    return len(connector._acquired_per_host.get(make_key(host), ()))


def waiter_count(connector: Any) -> int:
    """Futures queued in ``connector._waiters`` (woken ones are no longer queued)."""
    return sum(len(queue) for queue in connector._waiters.values())


def pooled_count(connector: Any) -> int:
    return sum(len(conns) for conns in connector._conns.values())


def assert_idle(connector: Any) -> None:
    """No slot held, no waiter queued, no empty per-key leftovers."""
    assert acquired_count(connector) == 0, f"slots still held: {connector._acquired!r}"
    assert waiter_count(connector) == 0, f"waiters left behind: {dict(connector._waiters)!r}"


# ------------------------------------------------------------------------ traces


class TraceFailure(Exception):
    """What a :class:`FakeTrace` raises when told to."""


class FakeTrace:
    """A ``Trace`` look-alike recording the connector's signals.

    ``log``: list the signal names are appended to (share one between traces).
    ``raise_on``: signal names (e.g. ``"connection_create_end"``) that raise ``error``
    (default :class:`TraceFailure`), ``times`` times each (``None``: always).
    ``block_on``: ``{signal: asyncio.Event}``: the signal waits for the event first.
    """

    def __init__(
        self,
        log: Optional[List[str]] = None,
        raise_on: Iterable[str] = (),
        error: Callable[[], BaseException] = lambda: TraceFailure("trace callback failed"),
        times: Optional[int] = None,
        block_on: Optional[Dict[str, asyncio.Event]] = None,
    ) -> None:
        self.log: List[str] = log if log is not None else []
        self.raise_on = set(raise_on)
        for name in self.raise_on | set(block_on or ()):
            assert name in SIGNALS, name
        self.error = error
        self.remaining = {name: times for name in self.raise_on}
        self.block_on = dict(block_on or {})

    async def _send(self, name: str) -> None:
        self.log.append(name)
        event = self.block_on.get(name)
        if event is not None:
            await event.wait()
        if name in self.raise_on:
            left = self.remaining[name]
            if left is None or left > 0:
                if left is not None:
                    self.remaining[name] = left - 1
                raise self.error()

    async def send_connection_queued_start(self) -> None:
        await self._send("connection_queued_start")

    async def send_connection_queued_end(self) -> None:
        await self._send("connection_queued_end")

    async def send_connection_create_start(self) -> None:
        await self._send("connection_create_start")

    async def send_connection_create_end(self) -> None:
        await self._send("connection_create_end")

    async def send_connection_reuseconn(self) -> None:
        await self._send("connection_reuseconn")


# ----------------------------------------------------------------- determinism


def fixed_order_shuffle(monkeypatch: Any) -> None:
    """Make ``_release_waiter``'s key shuffle a no-op (keys stay in insertion order).

    Patches ``random.shuffle`` (used as ``random.shuffle`` by aiohttp.connector
    and aiohttp_waiterfix.fixes.waiters) and any module-level ``shuffle`` name.
    """

    def keep_order(seq: Any, *args: Any) -> None:
        return None

    monkeypatch.setattr(random, "shuffle", keep_order)
    modules: List[Any] = [aiohttp_connector]
    try:
        from aiohttp_waiterfix.fixes import waiters as waiterfix_connector
    except Exception:  # pragma: no cover - the patch module needs names aiohttp may lack
        pass
    else:
        modules.append(waiterfix_connector)
    for module in modules:
        if getattr(module, "shuffle", None) is not None:
            monkeypatch.setattr(module, "shuffle", keep_order)
        rnd = getattr(module, "random", None)
        if rnd is not None and rnd is not random and hasattr(rnd, "shuffle"):
            monkeypatch.setattr(rnd, "shuffle", keep_order)
