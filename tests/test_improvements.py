"""Our improvements over upstream 3.10.11 (the ``# waiterfix:`` lines in _connector.py).

Every test here is ``@pytest.mark.improvement``: it fails on unpatched
3.8.0-3.10.10 *and* on 3.10.11 (where the patch is never applied), and passes
patched.  Each one is a hole 3.10.11 still has, listed in the README's
"Differences from aiohttp 3.10.11" section.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from support import (
    FakeTrace,
    TraceFailure,
    assert_idle,
    fixed_order_shuffle,
    make_connector,
    make_key,
    pooled_count,
    request,
    run,
    serve_all,
    settle,
    spawn,
    wait_done,
    waiter_count,
)

pytestmark = pytest.mark.improvement("waiters")


def test_woken_then_cancelled_waiter_passes_its_wakeup_on() -> None:
    """3.10.11 drops the wake-up: the slot idles until some other release happens."""

    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        b = spawn(request(connector))
        c = spawn(request(connector))
        await settle()
        a.close()  # frees the slot, wakes b
        b.cancel()  # b times out before it resumes
        # No further release, no new request: only b's pass-on can wake c.
        assert await wait_done([c]), "the wake-up was dropped: a slot idles while a request queues"
        await serve_all([c])
        assert b.cancelled()
        assert_idle(connector)
        await connector.close()

    run(main)


def test_wrong_host_wakeup_is_passed_on(monkeypatch: Any) -> None:
    """Two hosts, limit_per_host=1, both released in one loop turn.

    With the host order fixed (h1 first), the second release wakes a second h1
    waiter (h1's slot still looks free: its first waiter has not run yet).  That
    waiter finds no slot; 3.10.11 re-queues it and h2's free slot idles.
    """
    fixed_order_shuffle(monkeypatch)

    async def main() -> None:
        connector, _ = make_connector(limit=10, limit_per_host=1)
        a1 = await request(connector, "h1")
        a2 = await request(connector, "h2")
        b1 = spawn(request(connector, "h1"))
        await settle()
        c1 = spawn(request(connector, "h1"))
        await settle()
        b2 = spawn(request(connector, "h2"))
        await settle()
        assert list(connector._waiters) == [make_key("h1"), make_key("h2")]
        a1.close()
        a2.close()  # same loop turn
        # b1 gets h1's slot; b2 must get h2's without any further release.
        assert await wait_done([b1, b2]), "h2's free slot idles while its request queues"
        assert not c1.done()
        assert waiter_count(connector) == 1
        await serve_all([b1, b2, c1])
        assert_idle(connector)
        await connector.close()

    run(main)


def test_create_end_trace_raising_closes_the_new_protocol() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=1)
        trace = FakeTrace(raise_on={"connection_create_end"})
        with pytest.raises(TraceFailure):
            await request(connector, traces=[trace])
        assert len(creator.created) == 1
        assert creator.created[0].is_closed, "the new protocol was left open and unowned"
        assert_idle(connector)
        assert pooled_count(connector) == 0
        await serve_all([spawn(request(connector))])
        await connector.close()

    run(main)


def test_reuseconn_trace_raising_closes_the_popped_protocol() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=1)
        (await request(connector)).release()
        assert pooled_count(connector) == 1
        trace = FakeTrace(raise_on={"connection_reuseconn"})
        with pytest.raises(TraceFailure):
            await request(connector, traces=[trace])
        proto = creator.created[0]
        assert proto.is_closed, "the popped protocol was left open, in no pool"
        assert pooled_count(connector) == 0
        assert_idle(connector)
        await serve_all([spawn(request(connector))])
        assert len(creator.created) == 2
        await connector.close()

    run(main)


def test_queued_end_trace_raising_passes_the_wakeup_on() -> None:
    async def main() -> None:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        b = spawn(request(connector, traces=[FakeTrace(raise_on={"connection_queued_end"})]))
        c = spawn(request(connector))
        await settle()
        a.close()  # wakes b, whose queued_end callback raises
        assert await wait_done([b])
        assert isinstance(b.exception(), TraceFailure)
        assert await wait_done([c]), "the wake-up was dropped with the failed request"
        await serve_all([c])
        assert_idle(connector)
        await connector.close()

    run(main)


def test_close_with_waiters_on_a_closed_loop() -> None:
    """3.10.11 raises RuntimeError('Event loop is closed') from Future.cancel()."""
    loop = asyncio.new_event_loop()

    async def setup() -> Any:
        connector, _ = make_connector(limit=1)
        a = await request(connector)
        b = spawn(request(connector))
        await settle()
        return connector, a, b

    try:
        connector, a, b = loop.run_until_complete(setup())
        futures = [fut for queue in connector._waiters.values() for fut in queue]
        assert len(futures) == 1
    finally:
        loop.close()
    b._log_destroy_pending = False
    try:
        connector._close()  # must not raise
        assert all(fut.cancelled() for fut in futures), "the queued waiters were not cancelled"
        assert waiter_count(connector) == 0
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            del a, b


def test_connect_on_a_closed_connector_fails_instead_of_hanging() -> None:
    """Found by the randomized harness: 3.10.11 queues the request forever.

    ``_close()`` clears ``_acquired`` but not ``_acquired_per_host``, so the
    host still looks full, and nothing ever wakes a closed connector's waiters.
    """
    from aiohttp import ClientConnectionError

    async def main() -> None:
        connector, _ = make_connector(limit=10, limit_per_host=1)
        held = await request(connector, "h1")  # holds h1's only slot
        await connector.close()
        late = spawn(request(connector, "h1"))
        assert await wait_done([late]), "connect() on a closed connector hangs"
        with pytest.raises(ClientConnectionError):
            late.result()
        held.close()

    run(main)
