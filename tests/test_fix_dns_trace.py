"""The ``dns-trace`` fix: a raising ``on_dns_cache_miss`` callback must not wedge its host (aiohttp PR #10529).

``@pytest.mark.fix("dns-trace")`` tests hang (and so fail, each request being
bounded by ``WAIT``) on unpatched 3.8.0-3.11.13, and pass patched and on
3.11.14+.  The unmarked ones pass everywhere: they hold the DNS trace signals
and the throttle's sharing semantics to what the release itself does, which
matters because our code replaces the release's on every affected one.
Loopback only: a real ``aiohttp.web`` server on 127.0.0.1, a client
``TCPConnector`` whose resolver answers 127.0.0.1 for a made-up hostname.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

import pytest
from support import run

import aiohttp_waiterfix

import aiohttp  # isort: skip
from aiohttp import web  # isort: skip
from aiohttp.abc import AbstractResolver  # isort: skip

from aiohttp_waiterfix import _patcher
from aiohttp_waiterfix._registry import DNS_TRACE
from aiohttp_waiterfix._status import assess, fix_applied

VERSION = aiohttp.__version__
AFFECTED = assess(DNS_TRACE, VERSION).affected is True
HOST = "dns-trace.test"
"""Never reaches real DNS: only :class:`FakeResolver` answers it."""
WAIT = 1.0
"""Bound of one request: met in milliseconds when the connector works; an unpatched run pays it per hung request."""

needs_applied = pytest.mark.skipif(
    not fix_applied(aiohttp_waiterfix.status(), DNS_TRACE.id),
    reason=f"dns-trace is not applied here: {aiohttp_waiterfix.status().reason}",
)


class Boom(Exception):
    """What a trace callback raises when told to."""


class FakeResolver(AbstractResolver):
    """Answers 127.0.0.1 for any name, after one loop turn (a lookup in flight); counts its lookups."""

    def __init__(self, log: List[str]) -> None:
        self.calls = 0
        self.log = log
        self.error: Optional[BaseException] = None

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> List[Dict[str, Any]]:
        self.calls += 1
        self.log.append("resolver")
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


SIGNALS = ("dns_cache_miss", "dns_cache_hit", "dns_resolvehost_start", "dns_resolvehost_end")


class Harness:
    """A loopback server, a ``TCPConnector(resolver=FakeResolver())`` and a session tracing its DNS signals.

    ``log`` gets ``"<request>:<signal>"`` for each signal (and ``"resolver"`` per lookup);
    ``raise_on[signal]`` callbacks raise :class:`Boom` that many times; ``block_on[signal]``
    makes the callback wait for the event first.
    """

    def __init__(self, use_dns_cache: bool = True) -> None:
        self.use_dns_cache = use_dns_cache
        self.log: List[str] = []
        self.raise_on: Dict[str, int] = {}
        self.block_on: Dict[str, asyncio.Event] = {}
        self.numbers = 0

    async def __aenter__(self) -> Harness:
        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        self.resolver = FakeResolver(self.log)
        # force_close: every request looks its host up again (no pooled connection to reuse).
        self.connector = aiohttp.TCPConnector(
            resolver=self.resolver, use_dns_cache=self.use_dns_cache, force_close=True
        )
        self.trace = aiohttp.TraceConfig()
        for name in SIGNALS:
            getattr(self.trace, f"on_{name}").append(self._callback(name))
        self.session = self.new_session()
        return self

    def new_session(self) -> aiohttp.ClientSession:
        """A traced session on the harness's connector (the first one owns it)."""
        return aiohttp.ClientSession(
            connector=self.connector,
            connector_owner=not hasattr(self, "session"),
            trace_configs=[self.trace],
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.close()
        await self.runner.cleanup()

    def _callback(self, name: str) -> Any:
        async def callback(session: Any, context: Any, params: Any) -> None:
            self.log.append(f"{context.trace_request_ctx.name}:{name}")
            event = self.block_on.get(name)
            if event is not None:
                await event.wait()
            if self.raise_on.get(name, 0) > 0:
                self.raise_on[name] -= 1
                raise Boom(name)

        return callback

    async def get(self, host: str = HOST, session: Optional[aiohttp.ClientSession] = None) -> str:
        """``"ok"``, the exception's class name, or ``"hung"`` when no answer came within ``WAIT``."""
        self.numbers += 1
        name = f"r{self.numbers}"

        async def go() -> str:
            url = f"http://{host}:{self.port}/"
            async with (session or self.session).get(url, trace_request_ctx=SimpleNamespace(name=name)) as resp:
                return await resp.text()

        try:
            return await asyncio.wait_for(go(), WAIT)
        except asyncio.TimeoutError:
            return "hung"
        except Exception as exc:
            return type(exc).__name__

    def start(self, host: str = HOST) -> asyncio.Task[str]:
        return asyncio.ensure_future(self.get(host))

    async def logged(self, entry: str, count: int = 1) -> None:
        """Wait until ``entry`` is in the log ``count`` times (each request gets there in a few loop turns)."""
        for _ in range(1000):
            if self.log.count(entry) >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{entry!r} never logged {count} times: {self.log}")

    def throttled_hosts(self) -> int:
        """Entries in the connector's DNS throttle: lookups in flight (or left behind by the bug)."""
        table = getattr(self.connector, "_throttle_dns_futures", None)  # 3.10.10+
        if table is None:
            table = self.connector._throttle_dns_events  # type: ignore[attr-defined]
        return len(table)

    def signals_of(self, request: str) -> List[str]:
        return [entry.split(":", 1)[1] for entry in self.log if entry.startswith(f"{request}:")]


# ------------------------------------------------------------------------ the bug


@pytest.mark.fix("dns-trace")
def test_a_raising_cache_miss_callback_does_not_wedge_the_host() -> None:
    """Unpatched, the throttle entry stays: every later request to the host waits on it forever."""

    async def body() -> None:
        async with Harness() as h:
            h.raise_on["dns_cache_miss"] = 1
            assert await h.get() == "Boom"
            assert h.throttled_hosts() == 0, "the failed lookup left its throttle entry behind"
            assert await h.get() == "ok"
            async with h.new_session() as other:
                assert await h.get(session=other) == "ok"  # every session sharing the connector
            assert h.resolver.calls == 1  # the failed lookup never reached the resolver; the next one cached
            assert h.signals_of("r1") == ["dns_cache_miss"]
            assert h.signals_of("r2") == ["dns_cache_miss", "dns_resolvehost_start", "dns_resolvehost_end"]
            assert h.signals_of("r3") == ["dns_cache_hit"]

    run(body, timeout=10)


@pytest.mark.fix("dns-trace")
def test_lookups_waiting_on_it_get_the_callback_error() -> None:
    """Requests already waiting for the lookup get its exception, as for a resolver error (3.11.14's semantics)."""

    async def body() -> None:
        async with Harness() as h:
            h.raise_on["dns_cache_miss"] = 1
            h.block_on["dns_cache_miss"] = release = asyncio.Event()
            owner = h.start()
            await h.logged("r1:dns_cache_miss")
            waiters = [h.start(), h.start()]
            await h.logged("r2:dns_cache_hit")
            await h.logged("r3:dns_cache_hit")
            release.set()
            assert await asyncio.gather(owner, *waiters) == ["Boom", "Boom", "Boom"]
            assert h.throttled_hosts() == 0
            del h.block_on["dns_cache_miss"]
            assert await h.get() == "ok"
            assert h.resolver.calls == 1

    run(body, timeout=10)


@pytest.mark.fix("dns-trace")
def test_the_host_recovers_on_a_connector_shared_by_many_requests() -> None:
    """One raising callback among a burst of requests: unpatched, every request after it hangs."""

    async def body() -> None:
        async with Harness() as h:
            h.raise_on["dns_cache_miss"] = 1
            first = await asyncio.gather(*(h.start() for _ in range(5)))
            # The owner fails; the others either waited for it (and share its error) or came after it.
            assert first[0] == "Boom" and set(first) <= {"Boom", "ok"}, first
            later = await asyncio.gather(*(h.start() for _ in range(5)))
            assert later == ["ok"] * 5
            assert h.throttled_hosts() == 0

    run(body, timeout=10)


# ----------------------------------------------------- what must not change


@pytest.mark.parametrize("signal", ["dns_resolvehost_start", "dns_resolvehost_end"])
def test_other_raising_dns_callbacks_never_wedged_and_still_do_not(signal: str) -> None:
    """Already inside the try on every release: the owner fails, the next request resolves again."""

    async def body() -> None:
        async with Harness() as h:
            h.raise_on[signal] = 1
            assert await h.get() == "Boom"
            assert h.throttled_hosts() == 0
            assert await h.get() == "ok"
            assert h.resolver.calls == (2 if signal == "dns_resolvehost_end" else 1)

    run(body, timeout=10)


def test_a_resolver_error_is_shared_by_the_waiters_and_not_cached() -> None:
    async def body() -> None:
        async with Harness() as h:
            h.resolver.error = OSError("no such host")
            h.block_on["dns_resolvehost_start"] = release = asyncio.Event()
            owner = h.start()
            await h.logged("r1:dns_resolvehost_start")
            waiter = h.start()
            await h.logged("r2:dns_cache_hit")
            release.set()
            results = await asyncio.gather(owner, waiter)
            assert results[0] == results[1] and results[0].startswith("ClientConnector"), results
            h.resolver.error = None
            del h.block_on["dns_resolvehost_start"]
            assert await h.get() == "ok"
            assert h.resolver.calls == 2

    run(body, timeout=10)


def test_a_cancelled_request_does_not_cancel_the_lookup_it_started() -> None:
    """The owner's lookup is shielded: its waiters and the cache still get the answer."""

    async def body() -> None:
        async with Harness() as h:
            h.block_on["dns_resolvehost_start"] = release = asyncio.Event()
            owner = h.start()
            await h.logged("r1:dns_resolvehost_start")
            waiter = h.start()
            await h.logged("r2:dns_cache_hit")
            owner.cancel()
            release.set()
            assert await waiter == "ok"
            del h.block_on["dns_resolvehost_start"]
            assert await h.get() == "ok"
            assert h.resolver.calls == 1
            assert h.throttled_hosts() == 0

    run(body, timeout=10)


async def traced_scenario() -> Tuple[List[str], List[List[str]]]:
    """Every DNS path the fix's code runs on some release: a miss with a waiter, a hit, no cache, an IP address.

    Returns the whole log, in order, and each request's signals.
    """
    async with Harness() as h:
        assert await asyncio.gather(h.start(), h.start()) == ["ok", "ok"]  # r1 looks up, r2 waits for it
        assert await h.get() == "ok"  # r3: from the cache
        assert await h.get("127.0.0.1") == "ok"  # r4: an IP address, never resolved
        requests = [h.signals_of(f"r{n}") for n in range(1, 5)]
        log = list(h.log)
    async with Harness(use_dns_cache=False) as h:
        assert await h.get() == "ok"
        requests.append(h.signals_of("r1"))
        log += ["-- no cache --", *h.log]
    return log, requests


def test_trace_signals_are_the_documented_ones() -> None:
    """Tracers (OpenTelemetry, ddtrace) build their DNS spans from these: which request gets which, in order."""
    _, requests = run(traced_scenario, timeout=10)
    assert requests == [
        ["dns_cache_miss", "dns_resolvehost_start", "dns_resolvehost_end"],  # the lookup
        ["dns_cache_hit"],  # waited for it
        ["dns_cache_hit"],  # cached
        [],  # an IP address
        ["dns_resolvehost_start", "dns_resolvehost_end"],  # use_dns_cache=False
    ]


@needs_applied
def test_trace_signals_and_lookups_interleave_exactly_as_in_the_release_own_code() -> None:
    """The same scenario on aiohttp's original code (the fixes reverted) and on ours: the very same log."""
    try:
        aiohttp_waiterfix.revert()
        original = run(traced_scenario, timeout=10)
    finally:
        assert aiohttp_waiterfix.apply().applied
    ours = run(traced_scenario, timeout=10)
    assert ours == original


# -------------------------------------------------------------- the declaration


@pytest.mark.skipif(not AFFECTED, reason=f"aiohttp {VERSION}: {assess(DNS_TRACE, VERSION).reason}")
def test_the_declared_shape_is_this_release_shape() -> None:
    """Each variant replaces the function that holds the throttle on its releases, with the right table."""
    module = importlib.import_module("aiohttp.connector")
    variant = _patcher.variant_for(DNS_TRACE, VERSION)
    assert variant is not None
    (change,) = variant.changes
    has_method = "_resolve_host_with_throttle" in vars(module.TCPConnector)
    source = inspect.getsource(module)
    uses_futures = "self._throttle_dns_futures" in source
    assert ("self._throttle_dns_events" in source) is not uses_futures
    shape = {
        "resolve_host_events_inline": (False, False),
        "resolve_host_with_throttle_events": (True, False),
        "resolve_host_with_throttle_futures": (True, True),
    }[change.using]
    assert (has_method, uses_futures) == shape, (VERSION, change)
    assert change.name == ("_resolve_host_with_throttle" if has_method else "_resolve_host")
