"""Benchmark 2: the contended path -- many tasks competing for ``limit=10`` slots.

N tasks (100, 1000) share one connector with ``limit=10``; each request is
``acquire -> await asyncio.sleep(0) -> release`` on pooled stand-in
connections (no network I/O), so the time measured is the connector's
queueing: waiter futures, wake-ups and re-queues.  The workload is a fixed
number of requests split evenly over the tasks.  In the "10% cancelled" runs
every tenth request of each task is started as its own task and cancelled one
loop turn later, while it is queued: exactly what a request timeout does to a
waiting request.

Every run is bounded: a watchdog declares it *wedged* when no request
completes for ``--stall`` seconds, then cancels everything.  Unpatched 3.10.10
can wedge under cancellations (a cancelled waiter that had just been woken
loses the wake-up: aiohttp#9670); patched releases must never wedge.

Goal: patched 3.10.10 spends <= 1.05x the CPU time per request of upstream
3.10.11 (best of all repeats; fails beyond 1.15x, as in the overhead
benchmark), and never wedges.  CPU time, not wall time: this machine is
shared, and time spent descheduled is not the connector's.  Many short runs
(5k requests) rather than a few long ones: the minimum needs only one run
that other processes left alone.

With valgrind present, instructions per request are also counted for 100
tasks with and without cancellations (callgrind, as in bench_overhead): a
second goal (<= 1.05x, fails beyond 1.10x) that has no timing noise; when it
is met, a time ratio beyond 1.15x is reported as noise, not a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PATCHED,
    UNPATCHED,
    UPSTREAM,
    Env,
    Goal,
    bench_main,
    callgrind_available,
    callgrind_control,
    callgrind_dumps,
    emit,
    fake_connector_class,
    in_parallel,
    interleaved,
    prepare,
    run_worker,
    save_section,
    table,
    worker_status,
)

SCRIPT = Path(__file__).resolve()
ENVS = (PATCHED, UPSTREAM, UNPATCHED)
LIMIT = 10
CASES: Tuple[Tuple[int, int], ...] = ((100, 0), (1000, 0), (100, 10), (1000, 10))
"""(tasks, cancel every n-th request; 0 = none)."""
GOAL_RATIO = 1.05
FAIL_RATIO = 1.15
IR_FAIL_RATIO = 1.10
IR_ENVS = (PATCHED, UPSTREAM)


def case_name(tasks: int, cancel_every: int) -> str:
    return f"{tasks} tasks" + (f", {100 // cancel_every}% cancelled" if cancel_every else "")


# --------------------------------------------------------------------------- worker (inside a venv)


async def _one_run(tasks: int, total: int, cancel_every: int, stall: float) -> Dict[str, Any]:
    import aiohttp

    Connector, req, _ = fake_connector_class()
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=60)
    traces: List[Any] = []
    connector = Connector(limit=LIMIT)
    connect = connector.connect
    per_task = max(1, total // tasks)
    counts = {"ok": 0, "cancelled": 0, "leaked_acquired": 0}
    stopping = False
    remaining = tasks
    finished = asyncio.Event()

    async def worker(i: int) -> None:
        nonlocal remaining
        try:
            for j in range(per_task):
                if cancel_every and (i * per_task + j) % cancel_every == cancel_every - 1:
                    attempt = loop.create_task(connect(req, traces, timeout))
                    await asyncio.sleep(0)  # it starts and queues
                    attempt.cancel()  # a timeout hitting a queued request
                    try:
                        conn = await attempt
                    except asyncio.CancelledError:
                        if stopping:
                            raise
                        counts["cancelled"] += 1
                        continue
                    # it got a slot before the cancel landed: use it like any other
                else:
                    conn = await connect(req, traces, timeout)
                await asyncio.sleep(0)
                conn.release()
                counts["ok"] += 1
        finally:
            remaining -= 1
            if not remaining:
                finished.set()

    started = time.perf_counter()
    cpu_started = time.process_time()
    last_progress = started
    workers = [loop.create_task(worker(i)) for i in range(tasks)]
    wedged = False
    seen = -1
    while not finished.is_set():
        try:
            await asyncio.wait_for(finished.wait(), stall / 10)
        except asyncio.TimeoutError:
            pass
        done = counts["ok"] + counts["cancelled"]
        now = time.perf_counter()
        if done != seen:
            seen, last_progress = done, now
        elif now - last_progress > stall:
            wedged = True
            break
    elapsed = (last_progress if wedged else time.perf_counter()) - started
    cpu = time.process_time() - cpu_started
    if wedged:
        stopping = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    completed = counts["ok"] + counts["cancelled"]
    result = {
        "tasks": tasks,
        "cancel_every": cancel_every,
        "requests": per_task * tasks,
        "ok": counts["ok"],
        "cancelled": counts["cancelled"],
        "wedged": wedged,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        # CPU time: this machine is shared, and time spent descheduled is not the connector's
        "us_per_request": cpu / completed * 1e6 if completed else float("inf"),
        "acquired_at_end": len(connector._acquired),
    }
    await connector.close()
    return result


async def _measure(
    cases: List[Tuple[int, int]], total: int, repeats: int, stall: float, callgrind: Optional[List[int]] = None
) -> List[Dict[str, Any]]:
    await _one_run(100, 2000, 0, stall)  # warm-up
    out: List[Dict[str, Any]] = []
    if callgrind:
        # Under callgrind (see bench_overhead): one dump per segment, per case.
        callgrind_control("-i", "on")
        callgrind_control("-z")
        for tasks, cancel_every in cases:
            for n in callgrind:
                await _one_run(tasks, n, cancel_every, stall)
                callgrind_control("-d", f"case-{tasks}-{cancel_every}-{n}")
        callgrind_control("-i", "off")
        return out
    for tasks, cancel_every in cases:
        out.append(
            {
                "case": [tasks, cancel_every],
                "runs": [await _one_run(tasks, total, cancel_every, stall) for _ in range(repeats)],
            }
        )
    return out


def worker(argv: List[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default=";".join(f"{t},{c}" for t, c in CASES))
    parser.add_argument("--total", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stall", type=float, default=1.0)
    parser.add_argument("--callgrind", default="", help="segment lengths in requests (only under callgrind)")
    args = parser.parse_args(argv)
    cases = [(int(a), int(b)) for a, b in (c.split(",") for c in args.cases.split(";"))]
    segments = [int(n) for n in args.callgrind.split(",") if n]
    data = worker_status()
    data["cases"] = asyncio.run(_measure(cases, args.total, args.repeats, args.stall, segments))
    emit(data)


# --------------------------------------------------------------------------- driver

CALLGRIND_CASES: Tuple[Tuple[int, int], ...] = ((100, 0), (100, 10))
CALLGRIND_SEGMENTS = (400, 1200)


def callgrind_instructions(env: Env) -> Optional[Dict[str, float]]:
    """Instructions per request for CALLGRIND_CASES: difference of two segments over their extra requests."""
    short, long = CALLGRIND_SEGMENTS
    cases = ";".join(f"{t},{c}" for t, c in CALLGRIND_CASES)
    # a long stall: callgrind runs ~50x slower, and the watchdog must not call that a wedge
    args = ["--cases", cases, "--stall", "120", "--callgrind", f"{short},{long}"]
    totals = callgrind_dumps(env, SCRIPT, args, timeout=900)
    if not totals or len(totals) != 2 * len(CALLGRIND_CASES):
        return None
    return {
        case_name(*case): (totals[2 * i + 1] - totals[2 * i]) / (long - short) for i, case in enumerate(CALLGRIND_CASES)
    }


def run(
    rounds: int = 3, total: int = 5_000, repeats: int = 4, stall: float = 1.0, callgrind: bool = True
) -> Dict[str, Any]:
    prepare(ENVS)
    print(
        f"contended: limit={LIMIT}, {total:,} requests per run, {rounds} interleaved rounds x {len(ENVS)} envs, "
        f"{repeats} repeats per case per round; wedged = no progress for {stall}s"
    )
    # runs[env][case] -> list of run dicts
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {env.name: {} for env in ENVS}
    args = ["--total", str(total), "--repeats", str(repeats), "--stall", str(stall)]
    for round_no, env in interleaved(ENVS, rounds):
        data = run_worker(env, SCRIPT, args, timeout=600)
        summary = []
        for entry in data["cases"]:
            name = case_name(*entry["case"])
            runs[env.name].setdefault(name, []).extend(entry["runs"])
            best = min(r["us_per_request"] for r in entry["runs"])
            wedges = sum(r["wedged"] for r in entry["runs"])
            summary.append(f"{best:.1f}" + (f"(W{wedges})" if wedges else ""))
        print(f"  round {round_no + 1} {env.label:18s} us/request: {' | '.join(summary)}", flush=True)

    instructions: Dict[str, Optional[Dict[str, float]]] = {}
    if callgrind and callgrind_available():
        short, long = CALLGRIND_SEGMENTS
        print(
            f"  callgrind: instructions per request, {' and '.join(case_name(*c) for c in CALLGRIND_CASES)} "
            f"(one run per env, segments of {short} and {long} requests)",
            flush=True,
        )
        instructions = in_parallel({env.name: (lambda env=env: callgrind_instructions(env)) for env in IR_ENVS})

    def ir(env: Env, name: str) -> Optional[float]:
        return (instructions.get(env.name) or {}).get(name)

    rows = []
    goals = []
    for name in (case_name(*c) for c in CASES):
        ref = min(r["us_per_request"] for r in runs[UPSTREAM.name][name])
        ir_ref = ir(UPSTREAM, name)
        for env in ENVS:
            case_runs = runs[env.name][name]
            clean = [r for r in case_runs if not r["wedged"]]
            best = min((r["us_per_request"] for r in clean), default=float("nan"))
            count = ir(env, name)
            rows.append(
                [
                    name,
                    env.label,
                    best,
                    1e6 / best if clean else None,
                    best / ref,
                    count,
                    count / ir_ref if count and ir_ref else None,
                    f"{len(case_runs) - len(clean)}/{len(case_runs)}",
                    max(r["cancelled"] for r in case_runs),
                ]
            )
        best = min((r["us_per_request"] for r in runs[PATCHED.name][name] if not r["wedged"]), default=float("inf"))
        time_goal = Goal(
            f"contended {name}: patched / 3.10.11 (best CPU us per request)",
            best / ref,
            GOAL_RATIO,
            FAIL_RATIO,
            unit="x",
        )
        goals.append(time_goal)
        ir_patched = ir(PATCHED, name)
        if ir_patched and ir_ref:
            ir_ratio = ir_patched / ir_ref
            goals.append(
                Goal(
                    f"contended {name}: patched / 3.10.11 (instructions per request)",
                    ir_ratio,
                    GOAL_RATIO,
                    IR_FAIL_RATIO,
                    unit="x",
                )
            )
            if ir_ratio <= GOAL_RATIO:
                time_goal.not_confirmed = f"instruction counts say {ir_ratio:.3f}x"
        patched_wedges = sum(r["wedged"] for r in runs[PATCHED.name][name])
        goals.append(Goal(f"contended {name}: patched runs wedged", float(patched_wedges), 0, 0))
    headers = [
        "case",
        "env",
        "best CPU us/request",
        "requests/s",
        "x 3.10.11",
        "instr/request",
        "x 3.10.11",
        "wedged runs",
        "cancelled/run",
    ]
    print()
    print(table(headers, rows))
    for goal in goals:
        print("  " + goal.describe())
    result = {
        "config": {
            "limit": LIMIT,
            "requests_per_run": total,
            "rounds": rounds,
            "repeats_per_round": repeats,
            "stall_s": stall,
            "statistic": "min CPU us/request over non-wedged runs",
        },
        "headers": headers,
        "rows": rows,
        "runs": runs,
        "instructions_per_request": instructions,
        "goals": [g.as_dict() for g in goals],
    }
    save_section("contended", result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    return bench_main(run, worker, argv)


if __name__ == "__main__":
    sys.exit(main())
