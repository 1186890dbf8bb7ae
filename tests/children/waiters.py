"""Child of tests/test_waiters.py: the waiter fix applied while connectors are in use.

    python waiters.py made-before-apply|waiting-in-original-connect

Each case reverts and re-applies the patch, so it runs in its own interpreter
(``tests/`` on ``PYTHONPATH`` for support.py, no pytest).  It prints one JSON
object: ``ok`` (and ``error``, the failed assertion, when not ok), ``patched``
(our waiter fix was in place at start) and what else the case found.
:func:`woken_then_cancelled` is also run in-process by test_waiters.py.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Awaitable, Callable, Dict, List

from support import (
    PATCHED,
    FakeTrace,
    assert_idle,
    make_connector,
    pooled_count,
    request,
    run,
    serve_all,
    settle,
    spawn,
    waiter_count,
)

import aiohttp_waiterfix

Result = Dict[str, Any]


async def woken_then_cancelled(connector: Any) -> None:
    """A waiter is woken for a free slot and cancelled before it resumes (a timeout).

    Unpatched, its wake-up is lost, the other waiter is never woken, and because
    a waiter is still queued every later request queues too: wedged.
    """
    a = await request(connector)
    b = spawn(request(connector))
    c = spawn(request(connector))
    await settle()
    assert waiter_count(connector) == 2

    a.close()  # frees the only slot and wakes b ...
    b.cancel()  # ... which times out before it gets to run
    await settle()
    d = spawn(request(connector))  # traffic goes on
    await serve_all([c, d])
    assert b.cancelled()
    assert_idle(connector)


async def made_before_apply() -> Result:
    """A connector made while unpatched (deque waiters) gets the fixed behaviour once patched."""
    if PATCHED:
        aiohttp_waiterfix.revert()
    connector, _ = make_connector(limit=1)
    factory = connector._waiters.default_factory.__name__
    if PATCHED:
        assert aiohttp_waiterfix.apply().applied
    try:
        await woken_then_cancelled(connector)
    finally:
        await connector.close()
    return {"factory": factory}


async def waiting_in_original_connect() -> Result:
    """Requests queued inside the original connect() complete once the patch is applied."""
    if PATCHED:
        aiohttp_waiterfix.revert()
    connector, creator = make_connector(limit=1)
    log: List[str] = []
    a = await request(connector)
    b = spawn(request(connector, traces=[FakeTrace(log)]))  # waits inside the original connect()
    c = spawn(request(connector))
    e = spawn(request(connector, "h2"))
    await settle()
    assert waiter_count(connector) == 3
    if PATCHED:
        assert aiohttp_waiterfix.apply().applied
    a.release()  # the patched release wakes b or e; they resume in the old code: self._get(key)
    await settle()
    resumed = [t for t in (b, e) if t.done()]
    assert len(resumed) == 1, "the in-flight request did not resume"
    assert resumed[0].exception() is None
    d = spawn(request(connector))  # a request in the patched code
    await settle()
    await serve_all([b, c, d, e], close=False)
    assert log[:2] == ["connection_queued_start", "connection_queued_end"]
    assert log[2:] in (["connection_reuseconn"], ["connection_create_start", "connection_create_end"])
    assert_idle(connector)
    assert pooled_count(connector) == len(creator.created)
    await connector.close()
    return {}


CASES: Dict[str, Callable[[], Awaitable[Result]]] = {
    "made-before-apply": made_before_apply,
    "waiting-in-original-connect": waiting_in_original_connect,
}


def main() -> None:
    (case,) = sys.argv[1:]
    try:
        found: Result = {"ok": True, "patched": PATCHED, **run(CASES[case])}
    except AssertionError as exc:
        found = {"ok": False, "patched": PATCHED, "error": str(exc)}
    print(json.dumps(found))


if __name__ == "__main__":
    main()
