"""The reproduction of aiohttp#9670, written once for ``verify``, the tests and the benchmarks.

A loopback aiohttp server answers every request after ``slow_delay`` during a
first slow period, then alternates an instant answer and a slow one.  Many
client workers share one ``TCPConnector(limit=...)`` with a total timeout a
little shorter than the slow answer.  During the slow period every held
connection times out at once, together with the waiters woken for their
slots: on an unpatched release those wake-ups are lost and the connector
wedges for good.  Patched, requests keep succeeding (the instant answers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional


@dataclass(frozen=True)
class ScenarioConfig:
    duration: float = 4.0
    """Seconds the client runs."""
    slow_period: float = 1.0
    """Seconds from the first request during which every answer is slow."""
    slow_delay: float = 0.3
    """How long a slow answer takes."""
    timeout: float = 0.25
    """The client's total timeout per request (shorter than slow_delay)."""
    limit: int = 10
    workers: int = 30
    late_after: float = 2.5
    """Answers after this many seconds count as 'late' (after the first timeouts)."""


@dataclass
class ScenarioResult:
    aiohttp_version: str
    applied: bool
    config: ScenarioConfig
    ok: int = 0
    timeouts: int = 0
    errors: int = 0
    ok_late: int = 0
    ok_per_second: List[int] = field(default_factory=list)
    acquired_at_end: int = 0
    waiters_at_end: int = 0

    @property
    def late_rate(self) -> float:
        """Successful requests per second after the first timeouts."""
        span = self.config.duration - self.config.late_after
        return self.ok_late / span if span > 0 else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_scenario(
    config: ScenarioConfig = ScenarioConfig(),
    on_second: Optional[Callable[[int, int], None]] = None,
) -> ScenarioResult:
    """Run the scenario on the running loop; ``on_second(second, ok_in_it)`` reports progress."""
    import aiohttp
    from aiohttp import web

    import aiohttp_waiterfix
    from aiohttp_waiterfix._status import fix_applied

    started = time.monotonic()
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if time.monotonic() - started < config.slow_period or served % 2 == 0:
            await asyncio.sleep(config.slow_delay)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()

    waiters_applied = fix_applied(aiohttp_waiterfix.status(), "waiters")
    result = ScenarioResult(aiohttp.__version__, waiters_applied, config)
    buckets = [0] * int(config.duration + 1)
    url = f"http://127.0.0.1:{port}/"
    try:
        connector = aiohttp.TCPConnector(limit=config.limit)
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.monotonic()
            deadline = started + config.duration

            async def worker() -> None:
                while time.monotonic() < deadline:
                    try:
                        async with session.get(url) as resp:
                            await resp.read()
                    except asyncio.TimeoutError:
                        result.timeouts += 1
                    except asyncio.CancelledError:
                        # aiohttp 3.9.0's timer lets CancelledError escape from
                        # some timed-out requests and never un-cancels the task:
                        # count a timeout, undo that cancel, go on to the deadline.
                        uncancel = getattr(asyncio.current_task(), "uncancel", None)
                        if uncancel is not None:
                            uncancel()
                        result.timeouts += 1
                    except aiohttp.ClientError:
                        result.errors += 1
                        await asyncio.sleep(0.01)
                    else:
                        elapsed = time.monotonic() - started
                        result.ok += 1
                        buckets[min(int(elapsed), len(buckets) - 1)] += 1
                        if elapsed >= config.late_after:
                            result.ok_late += 1

            async def progress() -> None:
                for second in range(1, int(config.duration) + 1):
                    await asyncio.sleep(max(0.0, started + second - time.monotonic()))
                    if on_second is not None:
                        on_second(second, buckets[second - 1])

            reporter = asyncio.ensure_future(progress())
            await asyncio.gather(*(worker() for _ in range(config.workers)))
            reporter.cancel()
            result.acquired_at_end = len(connector._acquired)
            result.waiters_at_end = sum(len(q) for q in connector._waiters.values())
    finally:
        await runner.cleanup()
    result.ok_per_second = buckets[: int(config.duration)]
    return result


def main(argv: Optional[List[str]] = None) -> None:
    """Run one scenario in this process and print its result as JSON (used by verify)."""
    parser = argparse.ArgumentParser(prog="python -m aiohttp_waiterfix._scenario")
    for name, default in asdict(ScenarioConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--progress", action="store_true", help="print a dot per second on stderr")
    args = vars(parser.parse_args(argv))
    show = args.pop("progress")
    config = ScenarioConfig(**args)

    def on_second(second: int, ok: int) -> None:
        if show:
            print(f" {ok}", end="", file=sys.stderr, flush=True)

    result = asyncio.run(run_scenario(config, on_second))
    payload = asdict(result)
    payload["late_rate"] = result.late_rate
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
