"""Benchmark 6: the read path with ``paused-eof``: streaming bodies through one pooled connection.

Each request is ``async with session.get(url) as resp`` and the body streamed
with ``resp.content.iter_chunked(64 KiB)`` to its end, then released, on a
``TCPConnector(limit=1)``: every request reuses the one keep-alive connection
and ends in the ``StreamReader.feed_eof()`` the fix wraps.  Bodies of 1 KiB,
16 KiB, 256 KiB and 1 MiB, aiohttp's default ``read_bufsize`` (64 KiB: the two
large sizes pause and resume the connection while they stream).  The server is
a raw asyncio loopback server in its own process, so the measured CPU time is
the client's alone.  No ``sock_read``: the unpatched release then completes
every request too (the drained case only poisons a connection through that
timer).

Environments, all measured in this run, interleaved: 3.10.10 patched (both
fixes), 3.10.10 with only ``waiters`` (``AIOHTTP_WAITERFIX_SKIP=paused-eof``:
the cost of paused-eof alone), 3.10.10 unpatched (``AIOHTTP_WAITERFIX=0``),
and 3.11.10 patched and unpatched (the newest affected release, where
paused-eof is the only fix).

Goal: patched <= 1.02x unpatched per request, for each size (CPU time: the
minimum over all repeats of all rounds, which noise can only raise; fails
beyond 1.08x).  With valgrind, instructions per request from callgrind too
(two segments of different lengths per size, the difference divided by the
difference of their requests; fails beyond 1.05x), and a timing miss the
instruction counts do not show is reported as NOISE.  For the record, the
worker also times ``StreamReader`` create + ``feed_data`` + ``feed_eof``
alone, the absolute cost of the wrapper per body.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PATCHED,
    PATCHED_31110,
    UNPATCHED,
    UNPATCHED_31110,
    WITHOUT_PAUSED_EOF,
    Env,
    Goal,
    WorkerFailed,
    bench_main,
    callgrind_available,
    callgrind_control,
    callgrind_dumps,
    emit,
    in_parallel,
    interleaved,
    prepare,
    run_worker,
    save_section,
    table,
    worker_status,
)

SCRIPT = Path(__file__).resolve()
ENVS = (PATCHED, WITHOUT_PAUSED_EOF, UNPATCHED, PATCHED_31110, UNPATCHED_31110)
COMPARISONS: Tuple[Tuple[Env, Env, str], ...] = (
    (PATCHED, UNPATCHED, "3.10.10 patched / unpatched"),
    (PATCHED, WITHOUT_PAUSED_EOF, "3.10.10 paused-eof's own cost (patched / without paused-eof)"),
    (PATCHED_31110, UNPATCHED_31110, "3.11.10 patched / unpatched"),
)
SIZES = (1024, 16 * 1024, 256 * 1024, 1024 * 1024)
REQUESTS = {1024: 250, 16 * 1024: 200, 256 * 1024: 50, 1024 * 1024: 15}
"""Requests per repeat: about 40 ms of client CPU each here (many short repeats: the best is the least disturbed)."""
CALLGRIND_SEGMENTS = {1024: (30, 130), 16 * 1024: (30, 130), 256 * 1024: (10, 40), 1024 * 1024: (4, 16)}
CALLGRIND_RUNS = 2
"""Per env; the minimum per size counts (a request that waited for the server costs an extra loop turn)."""
MICRO_SEGMENTS = (2_000, 6_000)
"""Bodies in the two instrumented StreamReader segments (no I/O: exact to a few instructions)."""
CHUNK = 64 * 1024
GOAL_RATIO = 1.02
FAIL_RATIO = 1.08
IR_FAIL_RATIO = 1.05

# A raw keep-alive HTTP/1.1 server (standard library only): GET /<size> answers <size> bytes in one write.
SERVER = r"""
import asyncio, os, sys, threading

class Server(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
        CONNECTIONS.append(1)

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            size = int(head.split(b" ", 2)[1][1:])
            body = BODIES.get(size) or BODIES.setdefault(size, b"x" * size)
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, body))

CONNECTIONS, BODIES = [], {}

async def main():
    server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

# Exit with the worker: its end (even a crash) closes our stdin.
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
asyncio.run(main())
"""


# --------------------------------------------------------------------------- worker (inside a venv)


def _stream_micro(repeats: int, n: int = 20_000, callgrind: bool = False) -> float:
    """Best ns per StreamReader create + feed_data + feed_eof (not paused): what every body costs at its end.

    Under callgrind, instruments two segments of MICRO_SEGMENTS bodies instead.
    """
    from aiohttp import streams
    from aiohttp.base_protocol import BaseProtocol

    loop = asyncio.new_event_loop()
    protocol = BaseProtocol(loop)
    data = b"x" * 100

    def bodies(count: int) -> int:
        start = time.process_time_ns()
        for _ in range(count):
            stream = streams.StreamReader(protocol, 2**16, loop=loop)
            stream.feed_data(data)
            stream.feed_eof()
        return time.process_time_ns() - start

    try:
        bodies(1000)
        if callgrind:
            for count in MICRO_SEGMENTS:
                _segment(lambda count=count: bodies(count), f"micro-{count}")
            return float("nan")
        return min(bodies(n) / n for _ in range(repeats))
    finally:
        loop.close()


def _segment(run: Any, label: str) -> Any:
    """Run ``run()`` with callgrind instrumenting only it, then dump the counters."""
    callgrind_control("-i", "on")
    callgrind_control("-z")
    result = run()
    callgrind_control("-d", label)
    callgrind_control("-i", "off")
    return result


async def _measure(sizes: Sequence[int], scale: float, repeats: int, callgrind: bool, port: int) -> Dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=60)
    out: Dict[str, Any] = {"ns_per_request": {}}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def stream_many(size: int, n: int) -> int:
            url = f"http://127.0.0.1:{port}/{size}"
            start = time.process_time_ns()
            for _ in range(n):
                async with session.get(url) as resp:
                    got = 0
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        got += len(chunk)
                    assert got == size, (got, size)
            return time.process_time_ns() - start

        for size in sizes:
            n = max(1, int(REQUESTS[size] * scale))
            await stream_many(size, max(2, n // 4))  # warm-up
            gc.collect()
            out["ns_per_request"][str(size)] = [await stream_many(size, n) / n for _ in range(repeats)]
        if callgrind:
            # Under `valgrind --tool=callgrind --instr-atstart=no`: only the segments are instrumented.
            for size in sizes:
                await stream_many(size, 2)
                for n in CALLGRIND_SEGMENTS[size]:
                    callgrind_control("-i", "on")
                    callgrind_control("-z")
                    await stream_many(size, n)
                    callgrind_control("-d", f"size-{size}-{n}")
                    callgrind_control("-i", "off")
        pooled = [proto for entries in connector._conns.values() for proto, _ in entries]
        assert len(pooled) == 1 and not pooled[0]._reading_paused, "one pooled, reading connection throughout"
    return out


def worker(argv: List[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the requests per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true", help="instrumented segments (only under callgrind)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    data = worker_status()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        data.update(asyncio.run(_measure(sizes, args.scale, args.repeats, args.callgrind, port)))
    finally:
        server.kill()
        server.wait()
    data["stream_ns"] = _stream_micro(args.repeats * 2, callgrind=args.callgrind)
    emit(data)


# --------------------------------------------------------------------------- driver


def callgrind_instructions(env: Env, sizes: Sequence[int]) -> Optional[Dict[str, float]]:
    """Instructions per request for each size, and per body for the StreamReader micro ("micro").

    Each is (Ir(long segment) - Ir(short segment)) / (long - short), the
    minimum over CALLGRIND_RUNS runs: the requests go through a real socket, so
    a run's count still varies by an event-loop turn here and there.
    """
    out: Dict[str, float] = {}
    for _ in range(CALLGRIND_RUNS):
        totals = callgrind_dumps(
            env, SCRIPT, ["--sizes", ",".join(map(str, sizes)), "--scale", "0.01", "--repeats", "1", "--callgrind"]
        )
        if not totals or len(totals) < 2 * len(sizes) + 2:
            return None
        pairs = [(str(size), CALLGRIND_SEGMENTS[size]) for size in sizes] + [("micro", MICRO_SEGMENTS)]
        for i, (key, (short, long)) in enumerate(pairs):
            value = (totals[2 * i + 1] - totals[2 * i]) / (long - short)
            out[key] = min(out.get(key, value), value)
    return out


def run(rounds: int = 5, scale: float = 1.0, repeats: int = 8, callgrind: bool = True) -> Dict[str, Any]:
    prepare(ENVS)
    sizes = list(SIZES)
    print(
        f"read_path: {rounds} interleaved rounds x {len(ENVS)} envs, each {repeats} repeats per size "
        f"({', '.join(f'{s // 1024} KiB' for s in sizes)}); client CPU time per request"
    )
    samples: Dict[str, Dict[int, List[float]]] = {env.name: {size: [] for size in sizes} for env in ENVS}
    stream_ns: Dict[str, List[float]] = {env.name: [] for env in ENVS}
    worker_args = ["--scale", str(scale), "--repeats", str(repeats)]
    for round_no, env in interleaved(ENVS, rounds):
        data = run_worker(env, SCRIPT, worker_args, timeout=600)
        if data["applied_fixes"] != data["expected_fixes"]:
            raise WorkerFailed(f"{env.name}: fixes applied {data['applied_fixes']}, expected {data['expected_fixes']}")
        for size in sizes:
            samples[env.name][size].extend(data["ns_per_request"][str(size)])
        stream_ns[env.name].append(data["stream_ns"])
        bests = "  ".join(f"{min(data['ns_per_request'][str(s)]) / 1000:7.1f}" for s in sizes)
        print(f"  round {round_no + 1} {env.label:22s} best us/request by size: {bests}", flush=True)

    best = {env.name: {str(size): min(samples[env.name][size]) for size in sizes} for env in ENVS}
    for env in ENVS:
        best[env.name]["micro"] = min(stream_ns[env.name])
    instructions: Dict[str, Optional[Dict[str, float]]] = {}
    if callgrind and callgrind_available():
        print(f"  callgrind: instructions ({CALLGRIND_RUNS} runs per env, two segments per size)", flush=True)
        instructions = in_parallel({env.name: (lambda env=env: callgrind_instructions(env, sizes)) for env in ENVS})

    keys = [str(s) for s in sizes] + ["micro"]
    names = {**{str(s): f"{s // 1024} KiB" for s in sizes}, "micro": "feed_eof path"}
    headers = [
        "env",
        *(f"{names[k]} us/req" for k in keys[:-1]),
        "feed_eof path ns/body",
        *(f"{names[k]} instr" for k in keys),
    ]
    rows = []
    for env in ENVS:
        ir = instructions.get(env.name) or {}
        timing = [best[env.name][k] / 1000 for k in keys[:-1]] + [best[env.name]["micro"]]
        rows.append([env.label, *timing, *(ir.get(k) for k in keys)])
    print()
    print(table(headers, rows))

    goals: List[Goal] = []
    ratio_rows = []
    for env, ref, what in COMPARISONS:
        ir_env, ir_ref = instructions.get(env.name) or {}, instructions.get(ref.name) or {}
        for key in keys:
            ratio = best[env.name][key] / best[ref.name][key]
            ir_ratio = ir_env[key] / ir_ref[key] if key in ir_env and key in ir_ref else None
            ir_delta = ir_env[key] - ir_ref[key] if ir_ratio is not None else None
            ratio_rows.append([what, names[key], ratio, ir_ratio, ir_delta])
            if key == "micro":
                continue  # for the record: the absolute cost per body, not a goal
            goal = Goal(f"read path {names[key]}: {what} (best CPU per request)", ratio, GOAL_RATIO, FAIL_RATIO)
            goal.unit = "x"
            goals.append(goal)
            if ir_ratio is not None:
                goals.append(
                    Goal(
                        f"read path {names[key]}: {what} (instructions per request)",
                        ir_ratio,
                        GOAL_RATIO,
                        IR_FAIL_RATIO,
                        unit="x",
                    )
                )
                if ir_ratio <= GOAL_RATIO:
                    # Instruction counts have no timing noise: a time miss they do not show is the machine's.
                    goal.not_confirmed = f"instruction counts say {ir_ratio:.3f}x"
    print()
    print(table(["comparison", "what", "x CPU", "x instructions", "+instructions"], ratio_rows))
    for goal in goals:
        print("  " + goal.describe())
    result = {
        "config": {
            "rounds": rounds,
            "repeats_per_round": repeats,
            "requests_per_repeat": {str(s): max(1, int(REQUESTS[s] * scale)) for s in sizes},
            "read_bufsize": "default (64 KiB)",
            "chunk": CHUNK,
            "statistic": "min CPU ns per request over all repeats of all rounds (client process only); "
            f"instructions: min of {CALLGRIND_RUNS} callgrind runs",
        },
        "headers": headers,
        "rows": rows,
        "ratio_headers": ["comparison", "what", "x CPU", "x instructions", "+instructions"],
        "ratios": ratio_rows,
        "ns_per_request_samples": {name: {str(s): v for s, v in by_size.items()} for name, by_size in samples.items()},
        "stream_ns_samples": stream_ns,
        "instructions": instructions,
        "goals": [goal.as_dict() for goal in goals],
    }
    save_section("read_path", result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    return bench_main(run, worker, argv)


if __name__ == "__main__":
    sys.exit(main())
