"""The pool watchdog (aiohttp_waiterfix._watchdog, issue 14).

Unit tests drive a real ``BaseConnector`` (tests/support.py) and fake ones
through the watchdog's checks; the end-to-end tests (``slow``) run the issue's
scenario in a child process (tests/children/watchdog.py) with the waiter fix off
on an affected release, and with it on (or on a fixed release) for false alarms.

A lost wake-up is simulated the way the bug leaves a connector: a slot is
freed (the protocol leaves ``_acquired``) but nobody is woken.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import warnings
import weakref
from collections import OrderedDict, defaultdict, deque
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional

import aiohttp
import pytest
from aiohttp import connector as aiohttp_connector
from childproc import run_child
from support import PATCHED, FakeCreator, FakeProtocol, make_connector, make_key, request, run, settle

import aiohttp_waiterfix
from aiohttp_waiterfix import _startup, _watchdog
from aiohttp_waiterfix._registry import WAITERS
from aiohttp_waiterfix._status import assess

LOGGER = "aiohttp_waiterfix"
THRESHOLD = 0.2
INTERVAL = 0.05


@pytest.fixture
def watchdog(monkeypatch: Any, caplog: Any) -> Iterator[Any]:
    """The watchdog module, off and with zeroed counts; whatever ran before is restored afterwards."""
    before = (_watchdog._mode, _watchdog._threshold, _watchdog._interval)
    counts = dict(_watchdog._counts)
    monkeypatch.setattr(_watchdog, "MIN_INTERVAL", 0.01)
    _watchdog.stop()
    _watchdog._reset_counts()
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield _watchdog
    _watchdog.stop()
    _watchdog._counts.update(counts)  # this test's episodes were staged: not part of the run's totals
    if before[0] is not None:  # e.g. WAITERFIX_TEST_WATCHDOG turned it on for the whole run
        _watchdog.start(before[0], threshold=before[1], interval=before[2])


def warnings_logged(caplog: Any) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def strand_waiters(connector: Any, conn: Any) -> None:
    """Free ``conn``'s slot without waking anyone: the end state of a lost wake-up."""
    connector._acquired.discard(conn.protocol)
    per_host = connector._acquired_per_host.get(conn._key)
    if per_host is not None:
        per_host.discard(conn.protocol)
        if not per_host:
            del connector._acquired_per_host[conn._key]


def pending_waiters(connector: Any) -> int:
    return sum(1 for queue in connector._waiters.values() for fut in queue if not fut.done())


# --------------------------------------------------------------------------- the mode setting


@pytest.mark.parametrize(
    ("value", "mode", "valid"),
    [
        ("", None, True),
        ("0", None, True),
        ("off", None, True),
        (" False ", None, True),
        ("no", None, True),
        ("1", "report", True),
        ("on", "report", True),
        ("TRUE", "report", True),
        ("yes", "report", True),
        ("report", "report", True),
        ("heal", "heal", True),
        (" Heal\n", "heal", True),
        ("2", None, False),
        ("healing", None, False),
        ("reprot", None, False),
    ],
)
def test_parse_mode(value: str, mode: Optional[str], valid: bool) -> None:
    assert _startup.watchdog_mode(value) == mode
    reason = _startup.invalid_watchdog_value(value)
    if valid:
        assert reason is None
    else:
        assert reason is not None and _startup.WATCHDOG_ENV_VAR in reason and repr(value) in reason


# --------------------------------------------------------------------------- installing and removing


def _class_dicts() -> Dict[str, Dict[str, Any]]:
    names = ("BaseConnector", "TCPConnector", "UnixConnector", "NamedPipeConnector")
    classes = [getattr(aiohttp_connector, name) for name in names if hasattr(aiohttp_connector, name)]
    return {cls.__name__: dict(vars(cls)) for cls in classes}


def _assert_same(before: Dict[str, Dict[str, Any]], after: Dict[str, Dict[str, Any]]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        assert list(before[name]) == list(after[name]), f"{name}: attributes added, removed or reordered"
        changed = [attr for attr in before[name] if before[name][attr] is not after[name][attr]]
        assert not changed, f"{name}: not the same objects: {changed}"


def test_off_by_default_nothing_installed() -> None:
    """Without start() the watchdog installs nothing (checked in a fresh interpreter)."""
    found = run_child("watchdog.py", "off-by-default", unset=["AIOHTTP_WAITERFIX*"]).payload
    assert found == {"module": "aiohttp.connector", "wrapped": False, "idle": True}


def test_start_and_stop_restore_the_classes_exactly(watchdog: Any) -> None:
    before = _class_dicts()
    original = vars(aiohttp_connector.BaseConnector)["_cleanup_closed"]
    watchdog.start("report")
    hook = vars(aiohttp_connector.BaseConnector)["_cleanup_closed"]
    assert hook is not original and hook.__wrapped__ is original
    watchdog.start("heal")  # idempotent: the mode changes, nothing is installed twice
    assert vars(aiohttp_connector.BaseConnector)["_cleanup_closed"] is hook
    assert watchdog.snapshot().mode == "heal"
    watchdog.stop()
    watchdog.stop()
    _assert_same(before, _class_dicts())
    assert "__new__" not in vars(aiohttp_connector.BaseConnector)
    assert watchdog.snapshot().mode is None


def test_stop_leaves_a_later_wrapper_in_place(watchdog: Any, caplog: Any) -> None:
    cls = aiohttp_connector.BaseConnector
    watchdog.start("report")
    hook = vars(cls)["_cleanup_closed"]

    def someone_elses(self: Any) -> None:
        hook(self)

    cls._cleanup_closed = someone_elses
    try:
        watchdog.stop()
        assert vars(cls)["_cleanup_closed"] is someone_elses, "stop() dropped a wrapper installed after it"
        status = watchdog.snapshot()
        assert status.mode is None and "replaced or wrapped" in status.reason
        assert any("replaced or wrapped" in m for m in warnings_logged(caplog))

        async def body() -> None:
            connector, _ = make_connector(limit=1)  # still works: the hook left behind is inert
            await connector.close()

        run(body)
        watchdog.start("report")  # again: the hook left behind is used, not wrapped a second time
        assert vars(cls)["_cleanup_closed"] is someone_elses

        async def watched() -> None:
            connector, _ = make_connector(limit=1)
            assert watchdog.snapshot().connectors_watched == 1
            await connector.close()

        run(watched)
    finally:
        cls._cleanup_closed = hook
        watchdog.stop()
    assert vars(cls)["_cleanup_closed"] is getattr(hook, "__wrapped__", None)


@pytest.mark.skipif(not PATCHED, reason="needs the waiter fix applied")
def test_coexists_with_the_waiter_fix(watchdog: Any) -> None:
    """The fix's revert() and apply() do not see the watchdog's hook, and stop() does not see theirs."""
    before = _class_dicts()
    watchdog.start("heal")
    try:
        reverted = aiohttp_waiterfix.revert()
        assert not reverted.applied and "refused" not in reverted.reason
        assert aiohttp_waiterfix.apply().applied
    finally:
        if not aiohttp_waiterfix.status().applied:
            aiohttp_waiterfix.apply()
    watchdog.stop()
    after = _class_dicts()
    # apply() installed new wrapper objects: compare what the watchdog owns, and the key layout.
    assert after["BaseConnector"]["_cleanup_closed"] is before["BaseConnector"]["_cleanup_closed"]
    assert set(after["BaseConnector"]) == set(before["BaseConnector"])


def test_an_unknown_connector_class_is_refused(watchdog: Any) -> None:
    """Where new connectors could not be seen, the watchdog says so instead of watching half of them."""

    class NoCall:
        def __init__(self) -> None:
            self.x = 1

        def _cleanup_closed(self) -> None:
            pass

    class NoMethod:
        def __init__(self) -> None:
            self._cleanup_closed()

    assert "does not call _cleanup_closed" in (_watchdog._install(NoCall) or "")
    assert "missing" in (_watchdog._install(NoMethod) or "")
    assert _watchdog._hooked_class is None


def test_bad_mode_is_refused_without_raising(watchdog: Any) -> None:
    watchdog.start("loud")
    assert watchdog.snapshot().mode is None
    assert vars(aiohttp_connector.BaseConnector)["_cleanup_closed"].__module__ == "aiohttp.connector"


# --------------------------------------------------------------------------- lost wake-ups


async def _stranded(limit: int = 1) -> Any:
    """A connector whose slot was freed without waking its two waiting requests."""
    connector, _ = make_connector(limit=limit)
    holders = [await request(connector) for _ in range(limit)]
    queued = [asyncio.ensure_future(request(connector)) for _ in range(2)]
    await settle()
    assert pending_waiters(connector) == 2
    strand_waiters(connector, holders[0])
    return SimpleNamespace(connector=connector, holders=holders, queued=queued)


async def _finish(case: Any) -> None:
    for task in case.queued:
        if not task.done():
            task.cancel()
    await asyncio.gather(*case.queued, return_exceptions=True)
    for task in case.queued:
        if not task.cancelled() and task.exception() is None:
            task.result().close()
    for conn in case.holders:
        conn.close()
    await case.connector.close()


def test_lost_wakeup_is_reported_once_after_the_threshold(watchdog: Any, caplog: Any) -> None:
    async def body() -> None:
        watchdog.start("report", threshold=THRESHOLD, interval=INTERVAL)
        case = await _stranded()
        await asyncio.sleep(THRESHOLD / 2)
        assert warnings_logged(caplog) == [], "reported before the threshold"
        await asyncio.sleep(THRESHOLD + 4 * INTERVAL)
        assert watchdog.snapshot().lost_wakeup_episodes == 1
        await asyncio.sleep(5 * INTERVAL)  # still stuck: still the same episode
        assert pending_waiters(case.connector) == 2, "report mode must not touch the waiters"
        await _finish(case)

    run(body)
    logged = warnings_logged(caplog)
    assert len(logged) == 1, logged
    message = logged[0]
    for part in (
        "BaseConnector(limit=1, limit_per_host=0)",
        "2 requests waiting for a connection",
        "1 free slot",
        "h1:80",
        "aiohttp#9670",
        "https://github.com/aio-libs/aiohttp/issues/9670",
        f"aiohttp {aiohttp.__version__}",
    ):
        assert part in message, (part, message)
    status = watchdog.snapshot()
    assert status.lost_wakeup_episodes == 1 and status.waiters_woken == 0


def test_heal_wakes_the_stranded_waiters(watchdog: Any, caplog: Any) -> None:
    async def body() -> None:
        watchdog.start("heal", threshold=THRESHOLD, interval=INTERVAL)
        case = await _stranded()
        first, second = case.queued
        done, _ = await asyncio.wait([first], timeout=THRESHOLD + 6 * INTERVAL)
        assert done, "heal did not wake the stranded request"
        assert not second.done(), "heal woke more requests than there are free slots"
        assert len(case.connector._acquired) == 1
        first.result().release()  # the connector's own release path wakes the next one
        done, _ = await asyncio.wait([second], timeout=1.0)
        assert done
        await _finish(case)

    run(body)
    status = watchdog.snapshot()
    assert status.lost_wakeup_episodes == 1 and status.waiters_woken == 1
    assert "heal: woke 1 of them" in warnings_logged(caplog)[0]


def test_heal_does_not_double_a_wake_up_the_connector_just_made(watchdog: Any) -> None:
    """A release wakes a waiter; a check in the same loop turn sees another waiter and the slot still free.

    Healing right then would let two requests into one slot on 3.8-3.10.10 (a
    woken waiter does not look for a slot again); healing one turn later sees
    the first one holding it.
    """

    async def body() -> None:
        connector, _ = make_connector(limit=1)
        holder = await request(connector)
        first, second = (asyncio.ensure_future(request(connector)) for _ in range(2))
        await settle()
        state = _watchdog._State()
        now = connector._loop.time()
        state.stuck = {make_key("h1"): now - 2}  # stuck at the previous check, episode open:
        state.opened[_watchdog.LOST_WAKEUP] = now - 1  # heal acts on what it sees now
        holder.release()  # wakes `first`, which has not run yet
        _watchdog.check(connector, state, now, "heal", 0.5)
        await settle()
        assert first.done() and not second.done()
        assert len(connector._acquired) == 1
        first.result().release()
        (await asyncio.wait_for(second, 1.0)).release()
        await connector.close()

    run(body)
    assert watchdog.snapshot().waiters_woken == 0


@pytest.mark.parametrize("mode", ["report", "heal"])
def test_no_report_on_a_healthy_busy_connector(watchdog: Any, caplog: Any, mode: str) -> None:
    """Requests queued while every slot is held: waiting, not stuck."""

    async def body() -> None:
        watchdog.start(mode, threshold=THRESHOLD, interval=INTERVAL)
        connector, _ = make_connector(limit=1)
        holder = await request(connector)
        queued = [asyncio.ensure_future(request(connector)) for _ in range(3)]
        await asyncio.sleep(4 * THRESHOLD)
        assert pending_waiters(connector) == 3
        holder.release()
        for task in queued:
            conn = await asyncio.wait_for(task, 1.0)
            conn.release()
        await connector.close()

    run(body)
    assert warnings_logged(caplog) == []
    status = watchdog.snapshot()
    assert status.lost_wakeup_episodes == 0 and status.waiters_woken == 0


class _FakeFuture:
    def __init__(self, done: bool = False) -> None:
        self._done = done
        self.result: Any = "unset"

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        assert not self._done
        self._done, self.result = True, value


def _fake_connector(flavour: str, limit: int = 2, limit_per_host: int = 0, acquired: int = 0) -> Any:
    return SimpleNamespace(
        _waiters=defaultdict(deque if flavour == "deque" else OrderedDict),
        _conns={},
        _acquired={object() for _ in range(acquired)},
        _acquired_per_host=defaultdict(set),
        _limit=limit,
        _limit_per_host=limit_per_host,
        _loop=None,
        _closed=False,
    )


def _queue(conn: Any, key: Any, futures: List[Any]) -> None:
    queue = conn._waiters[key]
    for fut in futures:
        if isinstance(queue, deque):
            queue.append(fut)
        else:
            queue[fut] = None


@pytest.mark.parametrize("flavour", ["deque", "ordered"])
def test_the_stuck_state_belongs_to_the_connector_not_one_request(watchdog: Any, caplog: Any, flavour: str) -> None:
    """Each waiting request times out quickly and another takes its place: still one episode, reported in time."""
    conn = _fake_connector(flavour)
    state = _watchdog._State()
    key = make_key("h1")
    now = 0.0
    while now < 1.0:
        conn._waiters[key].clear()  # the previous requests timed out...
        _queue(conn, key, [_FakeFuture(), _FakeFuture()])  # ...and new ones wait
        _watchdog.check(conn, state, now, "report", 0.5)
        reported = len(warnings_logged(caplog))
        assert reported == (1 if now >= 0.5 else 0), now
        now += 0.25
    assert _watchdog._counts["lost"] == 1


@pytest.mark.parametrize("flavour", ["deque", "ordered"])
def test_heal_wakes_as_many_as_there_are_free_slots_on_both_queue_flavours(watchdog: Any, flavour: str) -> None:
    conn = _fake_connector(flavour, limit=3, acquired=1)  # two free slots
    state = _watchdog._State()
    key = make_key("h1")
    cancelled = _FakeFuture(done=True)
    waiting = [_FakeFuture() for _ in range(4)]
    _queue(conn, key, [cancelled, *waiting])
    _watchdog.check(conn, state, 0.0, "heal", 0.5)
    _watchdog.check(conn, state, 0.25, "heal", 0.5)
    assert [f.done() for f in waiting] == [False] * 4, "healed before the threshold"
    _watchdog.check(conn, state, 0.5, "heal", 0.5)
    assert [f.result for f in waiting] == [None, None, "unset", "unset"], "the two oldest are woken"
    assert list(conn._waiters[key]) == [cancelled, *waiting[2:]], "woken futures leave the queue; the rest stay"
    assert _watchdog._counts["woken"] == 2


def test_free_slots_counts_limit_and_limit_per_host_together() -> None:
    key, other = make_key("h1"), make_key("h2")
    conn = _fake_connector("deque", limit=10, limit_per_host=2, acquired=10)
    assert _watchdog.free_slots(conn, key) == 0  # per host free, total not
    conn = _fake_connector("deque", limit=10, limit_per_host=2, acquired=2)
    conn._acquired_per_host[key] = {object(), object()}
    assert _watchdog.free_slots(conn, key) == 0  # total free, per host not
    assert _watchdog.free_slots(conn, other) == 2
    conn = _fake_connector("deque", limit=0, limit_per_host=0)
    assert _watchdog.free_slots(conn, key) is None


def test_an_episode_ends_after_a_quiet_threshold_and_the_next_one_counts(watchdog: Any, caplog: Any) -> None:
    conn = _fake_connector("ordered")
    state = _watchdog._State()
    key = make_key("h1")
    fut = _FakeFuture()

    def at(now: float, stuck: bool) -> None:
        conn._waiters.clear()
        if stuck:
            _queue(conn, key, [fut])
        _watchdog.check(conn, state, now, "report", 0.5)

    for now in (0.0, 0.25, 0.5):
        at(now, True)
    assert len(warnings_logged(caplog)) == 1
    at(0.75, False)  # a short recovery...
    for now in (1.0, 1.25, 1.5, 1.75):
        at(now, True)  # ...is the same episode
    assert len(warnings_logged(caplog)) == 1
    for now in (2.0, 2.25, 2.5):
        at(now, False)  # quiet for the threshold: over
    assert any("episode over" in r.getMessage() for r in caplog.records)
    for now in (2.75, 3.0, 3.25):
        at(now, True)
    assert len(warnings_logged(caplog)) == 2
    assert _watchdog._counts["lost"] == 2


# --------------------------------------------------------------------------- paused idle connections


class _FakeTransport:
    def __init__(self, reading: bool = True, closing: bool = False) -> None:
        self.reading, self.closing = reading, closing

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closing


def _pooled(transport: Any, number: int) -> FakeProtocol:
    proto = FakeProtocol("h1", number)
    proto.transport = transport
    return proto


@pytest.mark.parametrize("mode", ["report", "heal"])
def test_paused_idle_connection(watchdog: Any, caplog: Any, mode: str) -> None:
    protos: Dict[str, FakeProtocol] = {}

    async def body() -> None:
        watchdog.start(mode, threshold=THRESHOLD, interval=INTERVAL)
        connector, _ = make_connector(limit=10)
        key = make_key("h1")
        now = connector._loop.time()
        protos["paused"] = _pooled(_FakeTransport(reading=False), 0)
        protos["healthy"] = _pooled(_FakeTransport(reading=True), 1)
        protos["closing"] = _pooled(_FakeTransport(reading=False, closing=True), 2)
        connector._conns[key] = [(p, now) for p in protos.values()]
        await asyncio.sleep(THRESHOLD + 4 * INTERVAL)
        pooled = [p for p, _ in connector._conns.get(key, [])]
        if mode == "heal":
            assert protos["paused"] not in pooled and protos["paused"].is_closed
        else:
            assert protos["paused"] in pooled and not protos["paused"].is_closed
        assert protos["healthy"] in pooled and not protos["healthy"].is_closed
        assert protos["closing"] in pooled and not protos["closing"].is_closed
        connector._conns.clear()
        await connector.close()

    run(body)
    logged = warnings_logged(caplog)
    assert len(logged) == 1, logged
    assert "1 idle pooled connection to h1:80 with reading paused" in logged[0]
    assert "aiohttp#10169" in logged[0] and "https://github.com/aio-libs/aiohttp/issues/10169" in logged[0]
    status = watchdog.snapshot()
    assert status.paused_idle_episodes == 1
    assert status.idle_connections_closed == (1 if mode == "heal" else 0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["report", "heal"])
def test_e2e_paused_connection_pooled_at_eof(watchdog: Any, caplog: Any, mode: str) -> None:
    """aiohttp#10169 on the loopback: a body over 2 x read_bufsize in one read leaves the pooled connection paused.

    Where the bug is present (before 3.11.11, unless a fix for it is applied) the
    watchdog reports it, and heal closes it so that the next request gets a new
    connection instead of hanging; where it is not, nothing is reported.
    """
    from aiohttp import web

    seen: Dict[str, Any] = {}

    async def body() -> None:
        async def handler(request: Any) -> Any:
            return web.Response(body=b"x" * 65536)

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = "http://127.0.0.1:%d/" % site._server.sockets[0].getsockname()[1]
        watchdog.start(mode, threshold=THRESHOLD, interval=INTERVAL)
        try:
            async with aiohttp.ClientSession(read_bufsize=1024) as session:
                async with session.get(url):
                    pass  # released unread
                await asyncio.sleep(0.05)
                pooled = [proto for conns in session.connector._conns.values() for proto, _ in conns]
                seen["paused"] = any(_watchdog._is_paused(proto) for proto in pooled)
                await asyncio.sleep(THRESHOLD + 4 * INTERVAL)
                try:
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        seen["second"] = len(await resp.read())
                except asyncio.TimeoutError:
                    seen["second"] = "hung"
        finally:
            await runner.cleanup()

    run(body)
    status = watchdog.snapshot()
    logged = warnings_logged(caplog)
    if not seen["paused"]:
        assert logged == [] and status.paused_idle_episodes == 0
        assert seen["second"] == 65536
        return
    assert len(logged) == 1 and "aiohttp#10169" in logged[0], logged
    assert status.paused_idle_episodes == 1
    if mode == "heal":
        assert status.idle_connections_closed == 1
        assert seen["second"] == 65536, "the next request hung: heal did not take the paused connection out"


def test_paused_flag_counts_when_the_transport_cannot_tell() -> None:
    proto = _pooled(SimpleNamespace(is_closing=lambda: False), 0)
    assert not _watchdog._is_paused(proto)
    proto._reading_paused = True  # type: ignore[attr-defined]
    assert _watchdog._is_paused(proto)
    assert not _watchdog._is_paused(_pooled(None, 1))


# --------------------------------------------------------------------------- tracking, weak references, timers


def test_a_dropped_connector_is_forgotten_and_the_timer_stops(watchdog: Any) -> None:
    loops: List[Any] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        watchdog.start("report", threshold=THRESHOLD, interval=INTERVAL)
        connector, _ = make_connector(limit=1)
        assert watchdog.snapshot().connectors_watched == 1
        watch = watchdog._watches[loop]
        assert watch.armed
        del connector
        gc.collect()
        assert len(watch.connectors) == 0, "the watchdog kept a dropped connector alive"
        assert watchdog.snapshot().connectors_watched == 0
        await asyncio.sleep(3 * INTERVAL)
        assert not watch.armed, "the timer kept running with no connector left"
        closed, _ = make_connector(limit=1)  # a new connector arms it again
        assert watch.armed
        await closed.close()
        await asyncio.sleep(3 * INTERVAL)
        assert not watch.armed and len(watch.connectors) == 0, "a closed connector is dropped"

    run(body)
    loop_ref = weakref.ref(loops.pop())
    gc.collect()
    assert loop_ref() is None, "the watchdog kept a closed loop alive"
    assert len(watchdog._watches) == 0


def test_connectors_that_exist_before_start_are_adopted(watchdog: Any, caplog: Any) -> None:
    async def body() -> None:
        case = await _stranded()  # created while the watchdog is off
        watchdog.start("report", threshold=THRESHOLD, interval=INTERVAL)
        assert watchdog.snapshot().connectors_watched == 1
        await asyncio.sleep(THRESHOLD + 4 * INTERVAL)
        await _finish(case)

    run(body)
    assert len(warnings_logged(caplog)) == 1


def test_a_connector_created_outside_its_running_loop(watchdog: Any, caplog: Any) -> None:
    """Created before its loop runs (3.8 module-level sessions, or ``loop=``): checked once the loop runs."""
    watchdog.start("report", threshold=THRESHOLD, interval=INTERVAL)
    loop = asyncio.new_event_loop()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            connector = aiohttp.BaseConnector(limit=1, loop=loop)
        connector._create_connection = FakeCreator()

        async def body() -> None:
            holder = await request(connector)
            queued = [asyncio.ensure_future(request(connector)) for _ in range(2)]
            await settle()
            strand_waiters(connector, holder)
            await asyncio.sleep(THRESHOLD + 4 * INTERVAL)
            await _finish(SimpleNamespace(connector=connector, holders=[holder], queued=queued))

        loop.run_until_complete(asyncio.wait_for(body(), 10))
    finally:
        loop.close()
    assert len(warnings_logged(caplog)) == 1


def test_connectors_on_loops_in_other_threads(watchdog: Any, caplog: Any) -> None:
    watchdog.start("heal", threshold=THRESHOLD, interval=INTERVAL)
    woken: List[bool] = []

    def thread_main() -> None:
        async def body() -> None:
            case = await _stranded()
            done, _ = await asyncio.wait([case.queued[0]], timeout=THRESHOLD + 8 * INTERVAL)
            woken.append(bool(done))
            await _finish(case)

        asyncio.run(body())

    threads = [threading.Thread(target=thread_main) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert woken == [True, True]
    assert watchdog.snapshot().lost_wakeup_episodes == 2


def test_odd_connectors_are_left_alone_without_raising(watchdog: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    missing = SimpleNamespace(_limit=1, _closed=False)
    state = _watchdog._State()
    _watchdog.check(missing, state, 0.0, "heal", 0.0)
    assert state.broken
    odd = _fake_connector("deque")
    odd._waiters[make_key("h1")].append("not a future")
    state = _watchdog._State()
    _watchdog.check(odd, state, 0.0, "heal", 0.0)
    _watchdog.check(odd, state, 1.0, "heal", 0.0)
    assert state.broken
    debug = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]
    assert len(debug) <= 1


def test_heal_never_exceeds_the_limits_on_a_fixed_connector(watchdog: Any) -> None:
    """Healing as eagerly as possible on a busy connector with cancellations: the limit still holds, all finish."""
    fixed = PATCHED or tuple(int(p) for p in aiohttp.__version__.split(".")[:3]) >= (3, 10, 11)
    if not fixed:
        pytest.skip("unpatched releases before 3.10.11 do not re-check for a slot when woken")
    peak = [0]

    async def body() -> None:
        watchdog.start("heal", threshold=0.0, interval=0.01)
        connector, _ = make_connector(limit=10, force_close=True)

        async def one(i: int) -> None:
            for j in range(60):
                if (i + j) % 10 == 0:
                    attempt = asyncio.ensure_future(request(connector))
                    await asyncio.sleep(0)
                    attempt.cancel()
                    try:
                        conn = await attempt
                    except asyncio.CancelledError:
                        continue
                else:
                    conn = await request(connector)
                peak[0] = max(peak[0], len(connector._acquired))
                await asyncio.sleep(0.001 if j % 7 == 0 else 0)
                conn.close()

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 30)
        assert len(connector._acquired) == 0 and pending_waiters(connector) == 0
        await connector.close()

    run(body)
    assert peak[0] <= 10


# --------------------------------------------------------------------------- end to end (the scenario)

E2E_SCENARIO = ["--duration", "6", "--slow-period", "1.5", "--late-after", "3", "--workers", "60"]
"""test_scenario's load (60 workers, 1.5 s slow period: wedges nearly every time), run long
enough for the late window (after 3 s) to start after a heal."""
E2E_THRESHOLD = _watchdog.DEFAULT_THRESHOLD
ATTEMPTS = 3


def _child(mode: str, fix: bool) -> Dict[str, Any]:
    """The scenario in a child whose environment asks for the watchdog (``mode``) and skips the waiter fix or not."""
    env = {}
    if not fix:
        env["AIOHTTP_WAITERFIX_SKIP"] = "waiters"
    if mode != "off":
        env["AIOHTTP_WAITERFIX_WATCHDOG"] = mode
    child = run_child(
        "watchdog.py", "scenario", "--watchdog", "env", *E2E_SCENARIO, env=env, unset=["AIOHTTP_WAITERFIX*"], timeout=90
    )
    return child.payload


def _watchdog_warnings(payload: Dict[str, Any]) -> List[Any]:
    return [r for r in payload["records"] if r[1] == "WARNING" and "watchdog" in r[2]]


def _affected() -> None:
    waiters = assess(WAITERS, aiohttp.__version__)
    if not waiters.affected:
        pytest.skip(f"no lost wake-ups to see: {waiters.reason}")


def _report(name: str, data: Dict[str, Any]) -> None:
    line = json.dumps({"test": name, "aiohttp": aiohttp.__version__, **data})
    print(f"\nWATCHDOG-E2E {line}")
    out = os.environ.get("WAITERFIX_WATCHDOG_E2E_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(line + "\n")


@pytest.mark.slow
def test_e2e_report_mode_warns_within_2s_of_the_wedge() -> None:
    _affected()
    tries = []
    for _ in range(ATTEMPTS):
        payload = _child("report", fix=False)
        assert payload["fix_applied"] is False
        warned = _watchdog_warnings(payload)
        stretches = [s for s in payload["stuck_stretches"] if s[1] - s[0] >= E2E_THRESHOLD]
        tries.append({"ok_per_second": payload["ok_per_second"], "warnings": len(warned), "stretches": stretches})
        if not stretches:
            continue  # this run did not wedge (the wedge is a race); try again
        assert len(warned) == 1, f"one warning per episode, got {warned}"
        at = warned[0][0]
        wedge = max(s[0] for s in payload["stuck_stretches"] if s[0] <= at)
        delay = at - wedge
        _report(
            "report",
            {
                "wedged_at_s": round(wedge, 3),
                "warned_at_s": round(at, 3),
                "delay_s": round(delay, 3),
                "ok_per_second": payload["ok_per_second"],
                "message": warned[0][2],
            },
        )
        assert delay <= 2.0, f"warned {delay:.2f} s after the wedge"
        assert payload["watchdog"]["lost_wakeup_episodes"] == 1
        return
    pytest.fail(f"the unpatched release did not wedge in {ATTEMPTS} runs: {tries}")


@pytest.mark.slow
def test_e2e_heal_mode_keeps_the_service_answering() -> None:
    _affected()
    patched = _child("off", fix=True)
    if not patched["fix_applied"]:
        pytest.skip("the waiter fix is not applied here (refused): nothing to compare with")
    tries = []
    for _ in range(ATTEMPTS):
        healed = _child("heal", fix=False)
        assert healed["fix_applied"] is False
        tries.append({"ok_per_second": healed["ok_per_second"], "watchdog": healed["watchdog"]})
        if healed["watchdog"]["lost_wakeup_episodes"] == 0:
            continue  # did not wedge: nothing was healed, try again
        ratio = healed["late_rate"] / patched["late_rate"] if patched["late_rate"] else float("inf")
        _report(
            "heal",
            {
                "heal_late_rate": round(healed["late_rate"], 1),
                "patched_late_rate": round(patched["late_rate"], 1),
                "ratio": round(ratio, 2),
                "heal_ok_per_second": healed["ok_per_second"],
                "patched_ok_per_second": patched["ok_per_second"],
                "waiters_woken": healed["watchdog"]["waiters_woken"],
                "peak_acquired": healed["peak_acquired"],
            },
        )
        assert patched["late_rate"] > 0, "the patched connector did not serve late answers"
        assert healed["late_rate"] >= 0.5 * patched["late_rate"], (healed["late_rate"], patched["late_rate"])
        assert healed["peak_acquired"] <= 10, "heal let more connections in than limit=10"
        return
    pytest.fail(f"the unpatched release did not wedge in {ATTEMPTS} runs: {tries}")


@pytest.mark.slow
def test_e2e_no_false_alarm_on_a_healthy_connector() -> None:
    payload = _child("report", fix=True)
    if assess(WAITERS, aiohttp.__version__).affected and not payload["fix_applied"]:
        pytest.skip("the waiter fix is not applied here (refused): no healthy connector to run")
    _report(
        "healthy",
        {
            "fix_applied": payload["fix_applied"],
            "late_rate": round(payload["late_rate"], 1),
            "warnings": len(_watchdog_warnings(payload)),
            "episodes": payload["watchdog"]["lost_wakeup_episodes"] + payload["watchdog"]["paused_idle_episodes"],
        },
    )
    assert payload["late_rate"] > 0
    assert _watchdog_warnings(payload) == []
    assert payload["watchdog"]["lost_wakeup_episodes"] == 0 and payload["watchdog"]["paused_idle_episodes"] == 0
