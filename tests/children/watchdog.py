"""Child of tests/test_watchdog.py: a fresh process's watchdog, and the issue's scenario under it.

    python watchdog.py off-by-default
    python watchdog.py scenario --watchdog report|heal|off|env [--threshold S] [--interval S] [scenario options]

``off-by-default``: after importing aiohttp with no watchdog asked for, is
anything of the watchdog installed?  ``scenario``:
runs ``aiohttp_waiterfix._scenario.run_scenario`` (the reproduction of
aiohttp#9670) in this process, with the watchdog started first, and prints one
JSON line: the scenario's result, every record of the ``aiohttp_waiterfix``
logger with its time, the watchdog's final snapshot, and what a probe saw.

The probe looks at the scenario's connector every 10 ms and records the
stretches during which requests waited while slots were free (the watchdog's
own condition, sampled 25 times more often): the start of the stretch that
was going on when the watchdog warned is the moment the connector wedged.
Times are seconds since the scenario started.  Whether the waiter fix is
applied is up to the environment (``AIOHTTP_WAITERFIX_SKIP=waiters`` leaves it
out); ``--watchdog env`` leaves starting the watchdog to activation
(``AIOHTTP_WAITERFIX_WATCHDOG``), the way an application gets it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Tuple

import aiohttp_waiterfix  # activation, unless AIOHTTP_WAITERFIX=0
from aiohttp_waiterfix import _watchdog
from aiohttp_waiterfix._scenario import ScenarioConfig, run_scenario
from aiohttp_waiterfix._status import fix_applied

PROBE_PERIOD = 0.01


class _Capture(logging.Handler):
    def __init__(self, origin: float) -> None:
        super().__init__(logging.DEBUG)
        self.origin = origin
        self.records: List[Tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic() - self.origin, record.levelname, record.getMessage()))


def _stuck(conn: Any) -> bool:
    """The watchdog's lost wake-up condition, right now."""
    for key, queue in list(conn._waiters.items()):
        free = _watchdog.free_slots(conn, key)
        if (free is None or free > 0) and _watchdog._pending(queue):
            return True
    return False


async def _probe(origin: float, stretches: List[List[float]], peak: Dict[str, int], stop: asyncio.Event) -> None:
    current: Optional[List[float]] = None
    while not stop.is_set():
        connectors = [conn for watch in list(_watchdog._watches.values()) for conn in list(watch.connectors)]
        now = time.monotonic() - origin
        for conn in connectors:
            peak["acquired"] = max(peak["acquired"], len(conn._acquired))
        if any(_stuck(conn) for conn in connectors if not conn.closed):
            if current is None:
                current = [now, now]
                stretches.append(current)
            current[1] = now
        else:
            current = None
        await asyncio.sleep(PROBE_PERIOD)


async def _main(config: ScenarioConfig, mode: str, threshold: float, interval: float) -> Dict[str, Any]:
    origin = time.monotonic()
    capture = _Capture(origin)
    logger = logging.getLogger("aiohttp_waiterfix")
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    if mode not in ("off", "env"):
        _watchdog.start(mode, threshold=threshold, interval=interval)
    stretches: List[List[float]] = []
    peak = {"acquired": 0}
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_probe(origin, stretches, peak, stop))
    result = await run_scenario(config)
    stop.set()
    await probe
    payload = asdict(result)
    payload["late_rate"] = result.late_rate
    payload["records"] = capture.records
    payload["stuck_stretches"] = stretches
    payload["peak_acquired"] = peak["acquired"]
    payload["watchdog"] = asdict(_watchdog.snapshot())
    payload["fix_applied"] = fix_applied(aiohttp_waiterfix.status(), "waiters")
    return payload


def off_by_default() -> Dict[str, Any]:
    import sys

    import aiohttp.connector

    method = aiohttp.connector.BaseConnector._cleanup_closed
    module = sys.modules.get("aiohttp_waiterfix._watchdog")
    idle = module is None or (module._mode is None and not module._watches)
    return {"module": method.__module__, "wrapped": hasattr(method, "__wrapped__"), "idle": idle}


def main() -> None:
    if sys.argv[1:2] == ["off-by-default"]:
        print(json.dumps(off_by_default()))
        return
    if sys.argv[1:2] == ["scenario"]:
        del sys.argv[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--watchdog", choices=("report", "heal", "off", "env"), default="report")
    parser.add_argument("--threshold", type=float, default=_watchdog.DEFAULT_THRESHOLD)
    parser.add_argument("--interval", type=float, default=_watchdog.DEFAULT_INTERVAL)
    for name, default in asdict(ScenarioConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = vars(parser.parse_args())
    mode, threshold, interval = args.pop("watchdog"), args.pop("threshold"), args.pop("interval")
    payload = asyncio.run(_main(ScenarioConfig(**args), mode, threshold, interval))
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
