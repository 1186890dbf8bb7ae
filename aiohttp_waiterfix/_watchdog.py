"""The pool watchdog: notice a stuck connector on any aiohttp release, and optionally unstick it.

Off by default, and then nothing of it is installed.  ``start()`` turns it on:

* **Tracking.**  ``aiohttp.connector.BaseConnector._cleanup_closed`` is
  replaced by a plain function that calls the original and then registers the
  connector.  Every ``BaseConnector.__init__`` from aiohttp 3.8.0 to 3.14.5
  ends with ``self._cleanup_closed()``, so each new connector is seen the
  moment it is complete (``_loop``, ``_waiters``... are set), whichever loop it
  belongs to and whether or not that loop runs yet.  None of the fixes touches
  that method, so the fixes' wrappers and their ``revert()`` checks never meet
  ours.  Connectors that already exist are adopted by one ``gc`` scan in
  ``start()``.  (A ``__new__`` on ``BaseConnector`` would see creations too, but
  it cannot be taken back: CPython 3.8-3.13 keep the class's ``tp_new`` slot
  pointing at the deleted ``__new__``, and every ``TCPConnector(limit=...)``
  then raises ``TypeError: object.__new__() takes exactly one argument``.)
* **Checking.**  One ``loop.call_later`` timer per event loop (every
  ``interval`` seconds, 0.25 s by default), armed when the first connector of
  that loop is seen, checks the live connectors of that loop and stops when
  none is left (or when the loop stops or closes: a closed loop drops its
  timers).  Connectors and loops are held by weak references only.  No task,
  no thread.
* **Signatures.**  (1) requests wait for a connection (non-done futures in
  ``_waiters[key]``) while the connector has free slots for that key,
  continuously for ``threshold`` seconds: the state of the connector, not of
  one request (each short-timeout request is replaced by another one);
  (2) idle pooled connections (in ``_conns``) whose reading is paused, for
  ``threshold`` seconds.  Each episode logs one WARNING on the
  ``aiohttp_waiterfix`` logger and is counted; ``snapshot()`` reads the counts.
* **Healing** (mode ``"heal"``): wake as many waiting requests as there are
  free slots (as the connector's own release path would: removed from the
  queue, then ``set_result(None)``), and close paused idle connections (taken
  out of the pool first, so no request picks one up).

Only attributes are read, never aiohttp's methods called; a connector lacking
one of them is left alone.  Nothing here ever raises into the application:
every callback catches everything and logs at DEBUG (once per place).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from ._startup import WATCHDOG_ENV_VAR

logger = logging.getLogger("aiohttp_waiterfix")

DEFAULT_THRESHOLD = 1.0
"""Seconds a signature must hold, continuously, before it is an episode."""
DEFAULT_INTERVAL = 0.25
"""Seconds between two checks of a loop's connectors."""
MIN_INTERVAL = 0.1
"""Checks run at most this often (a few times a second); tests may lower it."""

MODES = ("report", "heal")

LOST_WAKEUP = "lost wake-up"
PAUSED_IDLE = "paused idle connection"
KNOWN_BUGS: Dict[str, Tuple[str, str, str]] = {
    LOST_WAKEUP: ("aiohttp#9670", "https://github.com/aio-libs/aiohttp/issues/9670", "3.10.11"),
    PAUSED_IDLE: ("aiohttp#10169", "https://github.com/aio-libs/aiohttp/issues/10169", "3.11.11"),
}
"""Signature -> (bug, link, first aiohttp release with the fix)."""

HOOKED_METHOD = "_cleanup_closed"
"""The BaseConnector method wrapped to see new connectors (last call of every ``__init__``)."""
NEEDED_ATTRIBUTES = ("_waiters", "_conns", "_acquired", "_acquired_per_host", "_limit", "_limit_per_host", "_loop")


@dataclass(frozen=True)
class WatchdogStatus:
    """What the watchdog is doing, and what it has seen in this process."""

    mode: Optional[str]
    """``"report"``, ``"heal"``, or None when it is off."""
    lost_wakeup_episodes: int
    """Episodes of requests waiting while slots were free (aiohttp#9670), since the process started."""
    paused_idle_episodes: int
    """Episodes of idle pooled connections with reading paused (aiohttp#10169)."""
    waiters_woken: int
    """Waiting requests woken by heal mode."""
    idle_connections_closed: int
    """Paused idle connections closed by heal mode."""
    connectors_watched: int
    """Live connectors being checked now."""
    checks: int
    """Connector checks run so far (one per connector per interval)."""
    reason: str
    """One sentence: why it is on or off."""


# --------------------------------------------------------------------------- state

_lock = threading.RLock()
_mode: Optional[str] = None
_threshold = DEFAULT_THRESHOLD
_interval = DEFAULT_INTERVAL
_epoch = 0
"""Bumped by stop(): timers of an older epoch end at their next call."""
_reason = "off: start() has not been called"
_hooked_class: Optional[type] = None
_original: Any = None
"""The BaseConnector._cleanup_closed we replaced (put back by stop())."""
_hook: Any = None
"""The function we installed, to check nobody replaced or wrapped it before we remove it."""
_watches: weakref.WeakKeyDictionary[Any, _LoopWatch] = weakref.WeakKeyDictionary()
_counts: Dict[str, int] = {"lost": 0, "paused": 0, "woken": 0, "closed": 0, "checks": 0}
_logged: Set[str] = set()


class _LoopWatch:
    """The connectors of one event loop and whether its timer is armed.

    Holds no reference to the loop (it is a value of a WeakKeyDictionary keyed
    by the loop), and only weak ones to the connectors and the timer handle.
    """

    __slots__ = ("__weakref__", "armed", "connectors", "handle")

    def __init__(self) -> None:
        self.armed = False
        self.connectors: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
        self.handle: Optional[weakref.ref[Any]] = None


class _State:
    """What the watchdog remembers about one connector (never the connector itself)."""

    __slots__ = ("broken", "last_held", "opened", "paused", "stuck", "verified", "woken")

    def __init__(self) -> None:
        self.stuck: Dict[Any, float] = {}
        """Connection key -> when its requests started waiting with free slots (rebuilt every check)."""
        self.paused: Dict[int, float] = {}
        """id(protocol) -> since when that idle pooled connection is paused (rebuilt every check)."""
        self.opened: Dict[str, float] = {}
        """Signature -> when its current episode was reported."""
        self.last_held: Dict[str, float] = {}
        self.woken = 0
        self.verified = False
        self.broken = False
        """An attribute was missing or odd: leave this connector alone."""


def _debug_once(where: str) -> None:
    """Log the exception being handled, at DEBUG, once per place."""
    try:
        if where in _logged:
            return
        _logged.add(where)
        logger.debug("aiohttp-waiterfix watchdog: error in %s (ignored)", where, exc_info=True)
    except Exception:
        pass


# --------------------------------------------------------------------------- public API


def start(
    mode: str = "report",
    *,
    threshold: float = DEFAULT_THRESHOLD,
    interval: float = DEFAULT_INTERVAL,
    adopt_existing: bool = True,
) -> None:
    """Turn the watchdog on (``mode``: ``"report"`` or ``"heal"``); idempotent, thread-safe, never raises.

    Imports ``aiohttp.connector`` if it is not imported yet (start-up code that
    must stay lazy calls this from the post-import hook instead).  Calling it
    again while on changes the mode, threshold and interval.  A connector that
    already exists is adopted by one ``gc`` scan (``adopt_existing=False``
    skips it, e.g. right after aiohttp was imported, when none can exist).
    """
    global _mode, _threshold, _interval, _reason
    try:
        if mode not in MODES:
            logger.warning("aiohttp-waiterfix watchdog not started: mode must be one of %s, not %r", MODES, mode)
            return
        threshold = max(0.0, float(threshold))
        interval = max(MIN_INTERVAL, float(interval))
        module = sys.modules.get("aiohttp.connector")
        if module is None:
            import aiohttp.connector as module
        cls = getattr(module, "BaseConnector", None)
        with _lock:
            _threshold, _interval = threshold, interval
            if _mode is not None:
                _mode = mode
                _reason = f"on ({mode}): watching every aiohttp connector"
                return
            refusal = _install(cls)
            if refusal is not None:
                _reason = f"off: {refusal}"
                logger.warning("aiohttp-waiterfix watchdog not started: %s", refusal)
                return
            _mode = mode
            _reason = f"on ({mode}): watching every aiohttp connector"
        if adopt_existing:
            _adopt_existing(cls)
    except Exception:
        _debug_once("start()")


def stop() -> None:
    """Turn the watchdog off and put ``BaseConnector`` back as it was; idempotent, thread-safe, never raises.

    Timers of the calling thread's running loop are cancelled; those of other
    loops end at their next call (within one interval) without checking anything.
    """
    global _mode, _reason, _watches, _epoch
    try:
        with _lock:
            if _mode is None and _hooked_class is None:
                return
            _mode = None
            _epoch += 1
            watches = list(_watches.items())
            _watches = weakref.WeakKeyDictionary()
            left = _uninstall()
            _reason = "off: stop() was called" if left is None else f"off, but {left}"
        running = asyncio._get_running_loop()
        for loop, watch in watches:
            handle = watch.handle() if watch.handle is not None else None
            if handle is not None and loop is running:
                handle.cancel()
    except Exception:
        _debug_once("stop()")


def snapshot() -> WatchdogStatus:
    """The watchdog's mode, episode counts, heal counts and how many connectors it watches; thread-safe."""
    with _lock:
        watched = 0
        for watch in list(_watches.values()):
            watched += sum(1 for conn in list(watch.connectors) if not getattr(conn, "_closed", True))
        return WatchdogStatus(
            mode=_mode,
            lost_wakeup_episodes=_counts["lost"],
            paused_idle_episodes=_counts["paused"],
            waiters_woken=_counts["woken"],
            idle_connections_closed=_counts["closed"],
            connectors_watched=watched,
            checks=_counts["checks"],
            reason=_reason,
        )


# --------------------------------------------------------------------------- installing


def _install(cls: Any) -> Optional[str]:
    """Wrap ``cls._cleanup_closed`` (under the lock); the reason it cannot, or None."""
    global _hooked_class, _original, _hook
    if not isinstance(cls, type):
        return "aiohttp.connector has no BaseConnector class"
    if _hooked_class is cls:
        return None  # left in place by a stop() that found it wrapped by someone else: still called, works again
    original = vars(cls).get(HOOKED_METHOD)
    if not callable(original) or isinstance(original, (staticmethod, classmethod)):
        return f"BaseConnector.{HOOKED_METHOD} is missing or not a plain method (an aiohttp we do not know)"
    init = vars(cls).get("__init__")
    for _ in range(10):  # through wrappers (the waiter fix wraps __init__ with wrapt)
        init = getattr(init, "__wrapped__", init)
    if HOOKED_METHOD not in getattr(getattr(init, "__code__", None), "co_names", ()):
        return (
            f"BaseConnector.__init__ does not call {HOOKED_METHOD} (an aiohttp we do not know): "
            "new connectors would go unseen"
        )

    def _cleanup_closed(self: Any) -> None:
        original(self)
        if _mode is not None:
            _register(self)

    _cleanup_closed.__name__ = getattr(original, "__name__", HOOKED_METHOD)
    _cleanup_closed.__qualname__ = getattr(original, "__qualname__", HOOKED_METHOD)
    _cleanup_closed.__doc__ = getattr(original, "__doc__", None)
    _cleanup_closed.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, HOOKED_METHOD, _cleanup_closed)
    _hooked_class, _original, _hook = cls, original, _cleanup_closed
    return None


def _uninstall() -> Optional[str]:
    """Put the original method back (under the lock); what was left behind, or None."""
    global _hooked_class, _original, _hook
    cls = _hooked_class
    if cls is None:
        return None
    if vars(cls).get(HOOKED_METHOD) is not _hook:
        # Someone replaced or wrapped it after us: putting the original back
        # would drop their wrapper.  Ours stays, inert while the watchdog is off.
        why = f"BaseConnector.{HOOKED_METHOD} was replaced or wrapped after the watchdog's hook; the hook stays (inert)"
        logger.warning("aiohttp-waiterfix watchdog: %s", why)
        return why
    setattr(cls, HOOKED_METHOD, _original)
    _hooked_class = _original = _hook = None
    return None


def _adopt_existing(cls: Any) -> None:
    """Register the connectors that existed before start() (one pass over the collector's objects)."""
    try:
        found = [obj for obj in gc.get_objects() if isinstance(obj, cls)]
    except Exception:
        _debug_once("adopting existing connectors")
        return
    for conn in found:
        if not getattr(conn, "_closed", True):
            _register(conn)


# --------------------------------------------------------------------------- timers


def _register(conn: Any) -> None:
    """Watch ``conn`` and make sure its loop's timer is armed; never raises."""
    try:
        loop = getattr(conn, "_loop", None)
        if loop is None:
            return
        with _lock:
            if _mode is None:
                return
            watch = _watches.get(loop)
            if watch is None:
                watch = _watches[loop] = _LoopWatch()  # TypeError: a loop without weak references
            if conn not in watch.connectors:
                watch.connectors[conn] = _State()
            if watch.armed:
                return
            watch.armed = True
            epoch, interval = _epoch, _interval
        try:
            if asyncio._get_running_loop() is loop:
                _schedule(loop, watch, epoch, interval)
            else:
                # Another thread's loop, or one that does not run yet (aiohttp
                # 3.8 allows creating a connector outside a running loop).
                loop.call_soon_threadsafe(_arm, watch, epoch)
        except BaseException:
            with _lock:
                watch.armed = False
            raise
    except Exception:
        _debug_once("registering a connector")


def _schedule(loop: Any, watch: _LoopWatch, epoch: int, interval: float) -> None:
    handle = loop.call_later(interval, _tick, watch, epoch)
    try:
        watch.handle = weakref.ref(handle)
    except TypeError:
        watch.handle = None


def _arm(watch: _LoopWatch, epoch: int) -> None:
    try:
        loop = asyncio._get_running_loop()
        with _lock:
            if epoch != _epoch or loop is None:
                watch.armed = False
                return
            interval = _interval
        _schedule(loop, watch, epoch, interval)
    except Exception:
        watch.armed = False
        _debug_once("arming a timer")


def _tick(watch: _LoopWatch, epoch: int) -> None:
    """Check every connector of the running loop, then re-arm while any is left."""
    try:
        loop = asyncio._get_running_loop()
        with _lock:
            if epoch != _epoch or _mode is None or loop is None:
                watch.armed = False
                return
            mode, threshold, interval = _mode, _threshold, _interval
        _check_loop(watch, loop, mode, threshold)
        with _lock:
            if epoch != _epoch:
                return
            if not watch.connectors:
                watch.armed = False
                return
        _schedule(loop, watch, epoch, interval)
    except Exception:
        with _lock:
            watch.armed = False
        _debug_once("a periodic check")


def _check_loop(watch: _LoopWatch, loop: Any, mode: str, threshold: float) -> None:
    """Check the connectors of ``loop`` (their strong references end with this call)."""
    with _lock:
        items = list(watch.connectors.items())
        _counts["checks"] += len(items)
    now = loop.time()
    gone = []
    for conn, state in items:
        if getattr(conn, "_loop", None) is not loop or getattr(conn, "_closed", True):
            gone.append(conn)  # closed (for good), or moved to another loop (re-registered there)
            continue
        check(conn, state, now, mode, threshold)
    if gone:
        with _lock:
            for conn in gone:
                watch.connectors.pop(conn, None)
        for conn in gone:
            if not getattr(conn, "_closed", True):
                _register(conn)


# --------------------------------------------------------------------------- the checks


def check(conn: Any, state: _State, now: float, mode: str, threshold: float) -> None:
    """One check of one connector at loop time ``now``; never raises (a failing connector is left alone)."""
    if state.broken:
        return
    try:
        if not state.verified:
            if not all(hasattr(conn, name) for name in NEEDED_ATTRIBUTES):
                state.broken = True
                return
            state.verified = True
        _check_waiters(conn, state, now, mode, threshold)
        _check_pool(conn, state, now, mode, threshold)
    except Exception:
        state.broken = True
        _debug_once(f"checking a {type(conn).__name__}")


def free_slots(conn: Any, key: Any) -> Optional[int]:
    """Slots free for ``key`` as aiohttp 3.10.11 counts them (limit and limit_per_host together); None: no limit."""
    free: Optional[int] = None
    limit = conn._limit
    if limit:
        free = limit - len(conn._acquired)
    per_host = conn._limit_per_host
    if per_host:
        host_free = per_host - len(conn._acquired_per_host.get(key) or ())
        free = host_free if free is None else min(free, host_free)
    return free


def _pending(queue: Any) -> List[Any]:
    """The waiter futures of one key that are not done yet, oldest first (deque or ordered dict of futures)."""
    return [fut for fut in list(queue) if not fut.done()]


def _check_waiters(conn: Any, state: _State, now: float, mode: str, threshold: float) -> None:
    stuck: Dict[Any, Tuple[float, int, Optional[int]]] = {}
    waiters = conn._waiters
    if waiters:
        for key, queue in list(waiters.items()):
            free = free_slots(conn, key)
            if free is not None and free <= 0:
                continue
            count = len(_pending(queue))
            if count:
                stuck[key] = (state.stuck.get(key, now), count, free)
    previous = state.stuck
    state.stuck = {key: since for key, (since, _, _) in stuck.items()}
    opened = _episode(conn, state, LOST_WAKEUP, [since for since, _, _ in stuck.values()], now, threshold)
    if opened is None:
        return
    if not opened:
        state.woken = 0
        with _lock:
            _counts["lost"] += 1
    # Heal only keys seen stuck at the previous check too (not a passing moment), and one
    # loop turn later: a waiter the connector itself has just woken is then running and
    # holds its slot (3.8-3.10.10 do not look for a slot again once woken, so waking
    # another one for that slot would let one request too many in).
    heal = [key for key in stuck if key in previous] if mode == "heal" else []

    def act() -> None:
        try:
            woken = _wake(conn, heal) if heal else 0
            state.woken += woken
            if not opened:
                _report_lost_wakeup(conn, stuck, now, mode, woken)
        except Exception:
            state.broken = True
            _debug_once("healing")

    running = asyncio._get_running_loop()
    if heal and running is not None and conn._loop is running:
        running.call_soon(act)
    else:
        act()


def _wake(conn: Any, keys: List[Any]) -> int:
    """Wake as many waiters of ``keys`` as there are free slots, oldest first; how many were woken."""
    woken = 0
    total_free: Optional[int] = None
    if conn._limit:
        total_free = conn._limit - len(conn._acquired)
    for key in keys:
        queue = conn._waiters.get(key)
        if not queue:
            continue
        free = free_slots(conn, key)
        if free is None:
            free = len(queue)
        if total_free is not None:
            free = min(free, total_free)
        for fut in _pending(queue)[: max(0, free)]:
            # Out of the queue first, then woken: what _release_waiter does (both queue flavours).
            if isinstance(queue, dict):
                queue.pop(fut, None)
            else:
                try:
                    queue.remove(fut)
                except ValueError:
                    pass
            fut.set_result(None)
            woken += 1
            if total_free is not None:
                total_free -= 1
    if woken:
        with _lock:
            _counts["woken"] += woken
    return woken


def _is_paused(proto: Any) -> bool:
    """True when this (idle, pooled) connection's transport is open but not reading."""
    transport = getattr(proto, "transport", None)
    if transport is None:
        return False
    try:
        if transport.is_closing():
            return False
        is_reading = getattr(transport, "is_reading", None)
        if is_reading is not None:
            return not is_reading()
    except Exception:
        return False  # e.g. an SSL transport not initialised yet: nothing to say
    return getattr(proto, "_reading_paused", False) is True


def _check_pool(conn: Any, state: _State, now: float, mode: str, threshold: float) -> None:
    paused: Dict[int, Tuple[float, Any, Any, Any]] = {}
    pool = conn._conns
    if pool:
        for key, entries in list(pool.items()):
            for entry in list(entries):
                proto = entry[0]
                if _is_paused(proto):
                    paused[id(proto)] = (state.paused.get(id(proto), now), key, entries, entry)
    previous = state.paused
    state.paused = {ident: item[0] for ident, item in paused.items()}
    opened = _episode(conn, state, PAUSED_IDLE, [item[0] for item in paused.values()], now, threshold)
    if opened is None:
        return
    closed = 0
    if mode == "heal":
        for ident, (_, key, entries, entry) in paused.items():
            if ident not in previous:
                continue
            # Out of the pool first, so that no request can pick it up, then closed.
            try:
                entries.remove(entry)
            except ValueError:
                continue
            if not entries and pool.get(key) is entries:
                del pool[key]
            entry[0].close()
            closed += 1
        if closed:
            with _lock:
                _counts["closed"] += closed
    if not opened:
        with _lock:
            _counts["paused"] += 1
        _report_paused(conn, paused, now, mode, closed)


def _episode(
    conn: Any, state: _State, kind: str, held_since: List[float], now: float, threshold: float
) -> Optional[bool]:
    """Move ``kind``'s episode on: None, nothing to do now; False, one starts now; True, one goes on.

    ``held_since`` says since when each instance of the signature has held.  An
    episode starts once one has held for ``threshold``, and ends (logged by
    ``_close_episode``) once none has been seen for ``threshold``.
    """
    if held_since:
        state.last_held[kind] = now
    if kind not in state.opened:
        if not held_since or now - min(held_since) < threshold:
            return None
        state.opened[kind] = now
        return False
    if not held_since:
        if now - state.last_held.get(kind, now) >= threshold:
            _close_episode(conn, state, kind, now)
        return None
    return True


# --------------------------------------------------------------------------- messages


def describe_connector(conn: Any) -> str:
    return (
        f"{type(conn).__name__}(limit={getattr(conn, '_limit', '?')}, "
        f"limit_per_host={getattr(conn, '_limit_per_host', '?')}) at {id(conn):#x}"
    )


def _describe_key(key: Any) -> str:
    host, port = getattr(key, "host", None), getattr(key, "port", None)
    if host is None:
        return repr(key)
    return f"{host}:{port}" + (" (TLS)" if getattr(key, "is_ssl", False) else "")


def _bug(kind: str) -> str:
    name, link, fixed = KNOWN_BUGS[kind]
    version = getattr(sys.modules.get("aiohttp"), "__version__", "?")
    return f"this looks like the {kind} bug {name} ({link}), fixed in aiohttp {fixed}; this is aiohttp {version}"


def _warn(message: str) -> None:
    try:
        logger.warning("%s", message)
    except Exception:
        _debug_once("logging a warning")


def _report_lost_wakeup(
    conn: Any, stuck: Dict[Any, Tuple[float, int, Optional[int]]], now: float, mode: str, woken: int
) -> None:
    waiting = sum(count for _, count, _ in stuck.values())
    longest = now - min(since for since, _, _ in stuck.values())
    parts = []
    for key, (_, count, free) in stuck.items():
        slots = "no limit" if free is None else f"{free} free slot{'s' if free != 1 else ''}"
        parts.append(f"{count} for {_describe_key(key)} ({slots})")
    if mode == "heal":
        action = f"heal: woke {woken} of them" if woken else "heal: will wake them at the next check"
    else:
        action = f"report only ({WATCHDOG_ENV_VAR}=heal would wake them)"
    _warn(
        f"aiohttp-waiterfix watchdog: {describe_connector(conn)}: {waiting} request"
        f"{'s' if waiting != 1 else ''} waiting for a connection while slots are free, for {longest:.1f} s: "
        f"{'; '.join(parts)}; {_bug(LOST_WAKEUP)}; {action}"
    )


def _report_paused(
    conn: Any, paused: Dict[int, Tuple[float, Any, Any, Any]], now: float, mode: str, closed: int
) -> None:
    hosts = sorted({_describe_key(key) for _, key, _, _ in paused.values()})
    longest = now - min(item[0] for item in paused.values())
    if mode == "heal":
        action = f"heal: closed {closed} of them" if closed else "heal: will close them at the next check"
    else:
        action = f"report only: the next request to reuse one may hang ({WATCHDOG_ENV_VAR}=heal would close them)"
    _warn(
        f"aiohttp-waiterfix watchdog: {describe_connector(conn)}: {len(paused)} idle pooled connection"
        f"{'s' if len(paused) != 1 else ''} to {', '.join(hosts)} with reading paused for {longest:.1f} s; "
        f"{_bug(PAUSED_IDLE)}; {action}"
    )


def _close_episode(conn: Any, state: _State, kind: str, now: float) -> None:
    opened = state.opened.pop(kind, now)
    extra = f", woke {state.woken} waiting requests" if kind == LOST_WAKEUP and state.woken else ""
    try:
        logger.info(
            "aiohttp-waiterfix watchdog: %s: %s episode over after %.1f s%s",
            describe_connector(conn),
            kind,
            now - opened,
            extra,
        )
    except Exception:
        _debug_once("logging an episode's end")


def _reset_counts() -> None:
    """Tests only: zero the episode and heal counts."""
    with _lock:
        for name in _counts:
            _counts[name] = 0
