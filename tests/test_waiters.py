"""The backported behaviour: aiohttp 3.10.11's cancellation-safe connection waiters.

``@pytest.mark.fix`` tests fail on unpatched 3.8.0-3.10.10 and pass patched and
on 3.10.11+.  Unmarked tests are sanity checks that pass everywhere.
Everything runs against a ``BaseConnector`` with a fake ``_create_connection``
(see support.py); no sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest
from childproc import TESTS, run_child
from children.waiters import woken_then_cancelled  # shared with the child that runs it around revert()/apply()
from support import (
    WAIT,
    FakeTrace,
    TraceFailure,
    acquired_count,
    assert_idle,
    make_connector,
    make_key,
    request,
    run,
    serve_all,
    settle,
    spawn,
    wait_done,
    waiter_count,
)

# ------------------------------------------------------------ lost wake-ups


@pytest.mark.fix("waiters")
def test_woken_then_cancelled_waiter_does_not_lose_the_slot() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        try:
            await woken_then_cancelled(connector)
        finally:
            await connector.close()

    run(main)


def test_cancelled_while_queued_leaves_nothing_behind() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        b = spawn(request(connector))
        c = spawn(request(connector))
        await settle()
        b.cancel()
        assert await wait_done([b])
        assert b.cancelled()
        assert waiter_count(connector) == 1
        assert acquired_count(connector) == 1
        a.close()
        await serve_all([c])
        assert_idle(connector)
        await connector.close()

    run(main)


def test_cancelled_while_creating_releases_the_slot() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=1)
        creator.block = asyncio.Event()
        b = spawn(request(connector))
        await settle()
        assert acquired_count(connector) == 1  # the placeholder
        c = spawn(request(connector))
        await settle()
        b.cancel()
        assert await wait_done([b])
        creator.block.set()
        await serve_all([c])
        assert_idle(connector)
        await connector.close()

    run(main)


@pytest.mark.fix("waiters")
@pytest.mark.parametrize("signal", ["connection_queued_start", "connection_create_start", "connection_reuseconn"])
def test_cancelled_inside_a_trace_callback_leaves_nothing_behind(signal: str) -> None:
    """Unpatched, these trace callbacks run outside the try block that cleans up."""

    async def main() -> None:
        connector, _ = make_connector(limit=1)
        gate = asyncio.Event()  # never set: the callback blocks until cancelled
        trace = FakeTrace(block_on={signal: gate})
        holder = None
        if signal == "connection_queued_start":
            holder = await request(connector)
        elif signal == "connection_reuseconn":
            (await request(connector)).release()  # one protocol in the pool
        b = spawn(request(connector, traces=[trace]))
        await settle()
        assert trace.log[-1] == signal
        b.cancel()
        assert await wait_done([b])
        assert b.cancelled()
        assert waiter_count(connector) == 0, "the cancelled request's waiter was left queued"
        assert acquired_count(connector) == (1 if holder else 0), "the cancelled request still holds a slot"
        if holder is not None:
            holder.close()
        await serve_all([spawn(request(connector))])
        assert_idle(connector)
        await connector.close()

    run(main)


# ------------------------------------------------------------------ fairness


def test_waiters_are_served_fifo() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        tasks = []
        for _ in range(4):
            tasks.append(spawn(request(connector)))
            await settle()
        a.close()
        order: List[Any] = []
        await serve_all(tasks, order=order)
        assert order == tasks
        assert_idle(connector)
        await connector.close()

    run(main)


@pytest.mark.fix("waiters")
def test_new_arrival_does_not_starve_a_requeued_waiter() -> None:
    """A woken waiter whose slot was taken meanwhile re-queues *first*; the limit holds.

    Unpatched, the woken waiter never re-checks the limit: it opens a second
    connection while the limit (1) is reached.
    """

    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector, "h1")
        gate = asyncio.Event()
        b = spawn(request(connector, "h1", [FakeTrace(block_on={"connection_queued_end": gate})]))
        await settle()
        a.close()  # wakes b, which is held up in its queued_end callback
        await settle()
        d = spawn(request(connector, "h2"))  # a new arrival takes the free slot
        assert await wait_done([d])
        e = spawn(request(connector, "h1"))  # and another one queues
        await settle()
        gate.set()  # b resumes: its slot is gone
        await settle()
        assert not b.done(), "a woken waiter took a connection beyond the limit"
        assert acquired_count(connector) == 1
        d.result().close()
        order: List[Any] = []
        await serve_all([b, e], order=order)
        assert order == [b, e], "the re-queued waiter was not served first"
        assert_idle(connector)
        await connector.close()

    run(main)


# -------------------------------------------------------------------- limits


@pytest.mark.fix("waiters")
@pytest.mark.parametrize(
    "limit, limit_per_host, held, host, expected",
    [
        # total limit leaves 1, the host's own limit would allow 2
        (3, 3, ["h1", "h2"], "h1", 1),
        # nothing held for the host: the per-host limit still caps it
        (10, 2, [], "h1", 2),
        (10, 2, ["h1", "h2", "h3"], "h4", 2),
        # total leaves 2 of 6, host allows 4 more
        (6, 5, ["h1", "h2", "h2", "h3"], "h1", 2),
    ],
)
def test_available_connections_honours_both_limits(
    limit: int, limit_per_host: int, held: List[str], host: str, expected: int
) -> None:
    """aiohttp#9623: the smaller of the two remaining counts."""

    async def main() -> None:
        connector, _ = make_connector(limit=limit, limit_per_host=limit_per_host)
        conns = [await request(connector, h) for h in held]
        assert connector._available_connections(make_key(host)) == expected
        for conn in conns:
            conn.close()
        await connector.close()

    run(main)


@pytest.mark.parametrize(
    "limit, limit_per_host, held, host, expected",
    [
        (2, 0, ["h1"], "h1", 1),
        (2, 0, ["h1", "h2"], "h3", 0),
        (0, 2, ["h1"], "h1", 1),
        (0, 2, ["h1", "h1"], "h1", 0),
        (0, 0, ["h1", "h1"], "h1", 1),
        (3, 2, ["h1", "h1"], "h1", 0),
        (2, 2, ["h1", "h2"], "h1", 0),
    ],
)
def test_available_connections_simple_cases(
    limit: int, limit_per_host: int, held: List[str], host: str, expected: int
) -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=limit, limit_per_host=limit_per_host)
        conns = [await request(connector, h) for h in held]
        assert connector._available_connections(make_key(host)) == expected
        for conn in conns:
            conn.close()
        await connector.close()

    run(main)


def test_both_limits_are_respected_under_load() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=3, limit_per_host=2)
        creator.block = asyncio.Event()
        hosts = ["h1", "h1", "h1", "h2", "h2", "h3", "h1", "h3", "h2"]
        tasks = [spawn(request(connector, h)) for h in hosts]
        peak = 0
        peak_per_host = 0

        async def watch() -> None:
            nonlocal peak, peak_per_host
            while True:
                peak = max(peak, acquired_count(connector))
                per_host = [len(s) for s in connector._acquired_per_host.values()]
                peak_per_host = max([peak_per_host, *per_host])
                await asyncio.sleep(0)

        watcher = spawn(watch())
        await settle()
        creator.block.set()
        await serve_all(tasks)
        watcher.cancel()
        assert peak == 3
        assert peak_per_host == 2
        assert_idle(connector)
        await connector.close()

    run(main)


# -------------------------------------------------------------------- traces


@pytest.mark.parametrize("path", ["create", "reuse", "queued-create", "queued-reuse"])
def test_trace_signals_in_order(path: str) -> None:
    expected = {
        "create": ["connection_create_start", "connection_create_end"],
        "reuse": ["connection_reuseconn"],
        "queued-create": [
            "connection_queued_start", "connection_queued_end", "connection_create_start", "connection_create_end",
        ],
        "queued-reuse": ["connection_queued_start", "connection_queued_end", "connection_reuseconn"],
    }[path]  # fmt: skip

    async def main() -> None:
        connector, _ = make_connector(limit=1)
        log: List[str] = []
        traces = [FakeTrace(log)]
        if path == "reuse":
            (await request(connector)).release()
        if path.startswith("queued"):
            holder = await request(connector)
            task = spawn(request(connector, traces=traces))
            await settle()
            assert log == ["connection_queued_start"]
            if path == "queued-reuse":
                holder.release()
            else:
                holder.close()
            await serve_all([task])
        else:
            await serve_all([spawn(request(connector, traces=traces))])
        assert log == expected
        assert_idle(connector)
        await connector.close()

    run(main)


def test_every_trace_gets_every_signal() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        first: List[str] = []
        second: List[str] = []
        conn = await request(connector, traces=[FakeTrace(first), FakeTrace(second)])
        conn.close()
        assert first == second == ["connection_create_start", "connection_create_end"]
        await connector.close()

    run(main)


@pytest.mark.fix("waiters")
@pytest.mark.parametrize("signal", ["connection_queued_start", "connection_create_start", "connection_reuseconn"])
def test_raising_trace_callback_leaves_no_slot_or_waiter(signal: str) -> None:
    """The placeholder (or pooled protocol) and the waiter are released whatever raises."""

    async def main() -> None:
        connector, _ = make_connector(limit=1)
        holder = None
        if signal == "connection_queued_start":
            holder = await request(connector)
        elif signal == "connection_reuseconn":
            (await request(connector)).release()
        trace = FakeTrace(raise_on={signal})
        with pytest.raises(TraceFailure):
            await asyncio.wait_for(request(connector, traces=[trace]), WAIT)
        assert trace.log[-1] == signal
        assert waiter_count(connector) == 0, "the failed request's waiter was left queued"
        assert acquired_count(connector) == (1 if holder else 0), "the failed request still holds a slot"
        if holder is not None:
            holder.close()
        await serve_all([spawn(request(connector)), spawn(request(connector))])
        assert_idle(connector)
        await connector.close()

    run(main)


# --------------------------------------------------------------------- close


@pytest.mark.fix("waiters")
def test_close_cancels_queued_waiters() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        queued = [spawn(request(connector)), spawn(request(connector, "h2"))]
        await settle()
        await connector.close()
        assert await wait_done(queued), "requests queued on a closed connector hang"
        for task in queued:
            assert task.cancelled() or task.exception() is not None
        assert waiter_count(connector) == 0
        a.release()

    run(main)


def test_close_while_creating_closes_the_new_protocol() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=1)
        creator.block = asyncio.Event()
        task = spawn(request(connector))
        await settle()
        await connector.close()
        creator.block.set()
        assert await wait_done([task])
        assert task.exception() is not None
        assert all(p.is_closed for p in creator.created)

    run(main)


# ------------------------------------------------------ the sticky timeouts


@pytest.mark.fix("waiters")
def test_sticky_timeouts_wedge_recovers() -> None:
    """The issue's wedge: every held connection is released while the waiters
    woken for those slots time out in the same loop turn, and traffic goes on.
    """

    async def main() -> None:
        connector, creator = make_connector(limit=3)
        holders = [await request(connector) for _ in range(3)]
        waiters = [spawn(request(connector)) for _ in range(8)]
        await settle()
        assert waiter_count(connector) == 8
        for conn in holders:
            conn.close()  # every slot frees: three waiters are woken ...
        for task in waiters[:5]:
            task.cancel()  # ... and they (and two others) time out in the same turn
        await settle()
        later = [spawn(request(connector)) for _ in range(6)]
        await serve_all(waiters[5:] + later)
        assert all(t.cancelled() for t in waiters[:5])
        assert_idle(connector)
        assert len(creator.created) == 3 + 3 + 6  # the holders, the surviving waiters, the later ones
        await connector.close()

    run(main)


# ------------------------------------------------ patch applied while running


def waiters_child(case: str) -> Any:
    """Run a case of tests/children/waiters.py (it reverts and re-applies the patch) and return its result."""
    return run_child("waiters.py", case, pythonpath=[TESTS], timeout=60).payload


@pytest.mark.fix("waiters")
def test_connector_created_before_the_patch_keeps_working() -> None:
    """A connector made while unpatched (deque waiters) gets the fixed behaviour once patched."""
    result = waiters_child("made-before-apply")
    assert result["ok"], result["error"]
    if result["patched"]:
        assert result["factory"] == "deque"


def test_requests_waiting_in_the_original_connect_complete_after_apply() -> None:
    result = waiters_child("waiting-in-original-connect")
    assert result["ok"], result["error"]
