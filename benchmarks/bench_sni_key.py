"""Benchmark 7: what the ``sni-key`` fix costs per pooled acquire (the pool key of a real request).

Each cycle is ``conn = await connector.connect(request, [], timeout); conn.release()``
on a connector whose pool holds one stand-in protocol (as in ``bench_overhead``),
but the request is a real ``ClientRequest`` to ``https://127.0.0.1:8443/``, so
``connection_key`` -- the getter the fix wraps, read once per acquire -- is
timed.  Two cases: the common one, no ``server_hostname`` (the fix returns the
release's key unchanged), and a request with ``server_hostname="a.test"``
(the fix builds the key with the extra field; reported, no goal).

Two releases, each with and without the fix, as separate worker processes
interleaved in one run: aiohttp 3.10.10 (attrs keys; the waiters fix is
applied in both, only ``AIOHTTP_WAITERFIX_SKIP=sni-key`` differs) and 3.14.0
(NamedTuple keys; unpatched against patched).

Goal, per release: the common path with the fix <= 1.05x without it, in best
CPU time per cycle (fails beyond 1.15x, this shared machine's noise) and, with
valgrind, in instructions per cycle (fails beyond 1.10x); when the
instruction count meets the goal, a timing miss is reported as noise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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
    median,
    prepare,
    run_worker,
    save_section,
    table,
    worker_status,
)

SCRIPT = Path(__file__).resolve()
GOAL_RATIO = 1.05
FAIL_RATIO = 1.15
IR_FAIL_RATIO = 1.10
CASES = ("common", "override")
"""No server_hostname (the goal), and server_hostname="a.test" (reported)."""


@dataclass(frozen=True)
class SniEnv(Env):
    """An environment with ``AIOHTTP_WAITERFIX_SKIP`` set as given (also under callgrind)."""

    skip: str = ""
    sni_key: bool = True
    """Whether the sni-key fix must be applied here (checked by every worker)."""

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = super().environ(extra)
        env["AIOHTTP_WAITERFIX_SKIP"] = self.skip
        return env


# 3.10.10: both runs have the waiters fix; only sni-key differs.  `patched` is status().applied (every fix).
WITHOUT_3_10 = SniEnv(
    "no-sni-3.10.10", "3.10.10 without sni-key", "aiohttp-3.10.10", "3.10.10", False, skip="sni-key", sni_key=False
)
WITH_3_10 = SniEnv("sni-3.10.10", "3.10.10 with sni-key", "aiohttp-3.10.10", "3.10.10", True)
WITHOUT_3_14 = SniEnv(
    "no-sni-3.14.0", "3.14.0 unpatched", "aiohttp-3.14.0", "3.14.0", False, disabled=True, sni_key=False
)
WITH_3_14 = SniEnv("sni-3.14.0", "3.14.0 with sni-key", "aiohttp-3.14.0", "3.14.0", True)
ENVS = (WITHOUT_3_10, WITH_3_10, WITHOUT_3_14, WITH_3_14)
PAIRS: Tuple[Tuple[SniEnv, SniEnv], ...] = ((WITHOUT_3_10, WITH_3_10), (WITHOUT_3_14, WITH_3_14))


# --------------------------------------------------------------------------- worker (inside a venv)


async def _measure(cycles: int, repeats: int, callgrind: List[int]) -> Dict[str, Any]:
    import aiohttp
    from aiohttp.client_reqrep import ClientRequest
    from yarl import URL

    Connector, _, created = fake_connector_class()  # its request is plain http: ours are https
    loop = asyncio.get_running_loop()
    url = URL("https://127.0.0.1:8443/")
    requests = {
        "common": ClientRequest("GET", url, loop=loop),
        "override": ClientRequest("GET", url, loop=loop, server_hostname="a.test"),
    }
    timeout = aiohttp.ClientTimeout(total=5)
    traces: List[Any] = []
    connector = Connector(limit=100)
    connect = connector.connect

    async def cycle_many(request: Any, n: int) -> int:
        start = time.process_time_ns()
        for _ in range(n):
            conn = await connect(request, traces, timeout)
            conn.release()
        return time.process_time_ns() - start

    result: Dict[str, Any] = {}
    for case in CASES:
        await cycle_many(requests[case], min(cycles, 20_000))  # pools the case's connection, warms up
        result[case] = [await cycle_many(requests[case], cycles) / cycles for _ in range(repeats)]
    if callgrind:
        for case in CASES:  # dumps: common short, common long, override short, override long
            callgrind_control("-i", "on")
            callgrind_control("-z")
            for n in callgrind:
                await cycle_many(requests[case], n)
                callgrind_control("-d", f"{case}-{n}")
            callgrind_control("-i", "off")
    await connector.close()
    types = {case: type(request.connection_key).__name__ for case, request in requests.items()}
    return {"ns_per_cycle": result, "protocols": len(created), "key_types": types}


def worker(argv: List[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--callgrind", default="", help="segment lengths, e.g. 1000,3000 (only under callgrind)")
    args = parser.parse_args(argv)
    import aiohttp_waiterfix
    from aiohttp_waiterfix._status import fix_applied

    data = worker_status()
    data["sni_key"] = fix_applied(aiohttp_waiterfix.status(), "sni-key")
    segments = [int(n) for n in args.callgrind.split(",") if n]
    data.update(asyncio.run(_measure(args.cycles, args.repeats, segments)))
    emit(data)


# --------------------------------------------------------------------------- driver


def _check(env: SniEnv, data: Dict[str, Any]) -> None:
    if data["sni_key"] != env.sni_key:
        raise RuntimeError(f"{env.name}: sni-key applied={data['sni_key']}, expected {env.sni_key}")
    # One pooled connection per key: the common request's, and (with the fix) the override's own.
    if data["protocols"] != (2 if env.sni_key else 1):
        raise RuntimeError(f"{env.name}: {data['protocols']} connections created for 2 requests")


def callgrind_instructions(env: SniEnv, short: int = 1_000, long: int = 3_000) -> Optional[Dict[str, float]]:
    """Instructions per cycle of each case, noise-free: (Ir(long) - Ir(short)) / (long - short)."""
    totals = callgrind_dumps(env, SCRIPT, ["--cycles", "1000", "--repeats", "1", "--callgrind", f"{short},{long}"])
    if not totals or len(totals) < 2 * len(CASES):
        return None
    return {case: (totals[2 * i + 1] - totals[2 * i]) / (long - short) for i, case in enumerate(CASES)}


def run(rounds: int = 5, cycles: int = 20_000, repeats: int = 10, callgrind: bool = True) -> Dict[str, Any]:
    prepare(ENVS)
    print(f"sni_key: {rounds} interleaved rounds x {len(ENVS)} envs, each {repeats} repeats x {cycles:,} cycles a case")
    samples: Dict[str, Dict[str, List[List[float]]]] = {env.name: {case: [] for case in CASES} for env in ENVS}
    for round_no, env in interleaved(ENVS, rounds):
        data = run_worker(env, SCRIPT, ["--cycles", str(cycles), "--repeats", str(repeats)], timeout=300)
        _check(env, data)
        for case in CASES:
            samples[env.name][case].append(data["ns_per_cycle"][case])
        best_now = "  ".join(f"{case} {min(data['ns_per_cycle'][case]):6.0f}" for case in CASES)
        print(f"  round {round_no + 1} {env.label:24s} best ns/cycle: {best_now}", flush=True)

    best = {n: {c: min(min(s) for s in runs[c]) for c in CASES} for n, runs in samples.items()}
    med = {n: {c: median([min(s) for s in runs[c]]) for c in CASES} for n, runs in samples.items()}
    instructions: Dict[str, Optional[Dict[str, float]]] = {}
    if callgrind and callgrind_available():
        print("  callgrind: instructions per cycle (one run per env, segments of 1k and 3k cycles)", flush=True)
        instructions = in_parallel({env.name: (lambda env=env: callgrind_instructions(env)) for env in ENVS})

    rows = []
    goals: List[Goal] = []
    for without, with_fix in PAIRS:
        for case in CASES:
            for env in (without, with_fix):
                ir = (instructions.get(env.name) or {}).get(case)
                ir_ref = (instructions.get(without.name) or {}).get(case)
                rows.append(
                    [
                        env.label,
                        case,
                        best[env.name][case],
                        best[env.name][case] / best[without.name][case],
                        med[env.name][case],
                        med[env.name][case] / med[without.name][case],
                        ir,
                        (ir / ir_ref) if ir and ir_ref else None,
                    ]
                )
        release = with_fix.aiohttp
        time_goal = Goal(
            f"sni_key {release}: common path with / without the fix (best CPU ns per acquire)",
            best[with_fix.name]["common"] / best[without.name]["common"],
            GOAL_RATIO,
            FAIL_RATIO,
            unit="x",
        )
        goals.append(time_goal)
        ir_with = (instructions.get(with_fix.name) or {}).get("common")
        ir_without = (instructions.get(without.name) or {}).get("common")
        if ir_with and ir_without:
            ratio = ir_with / ir_without
            goals.append(
                Goal(
                    f"sni_key {release}: common path with / without the fix (instructions per acquire)",
                    ratio,
                    GOAL_RATIO,
                    IR_FAIL_RATIO,
                    unit="x",
                )
            )
            if ratio <= GOAL_RATIO:
                time_goal.not_confirmed = f"instruction counts say {ratio:.3f}x"
    headers = [
        "env",
        "case",
        "best ns/acquire",
        "x without",
        "median ns/acquire",
        "x without",
        "instr/acquire",
        "x without",
    ]
    print()
    print(table(headers, rows))
    for goal in goals:
        print("  " + goal.describe())
    result = {
        "config": {
            "rounds": rounds,
            "repeats_per_round": repeats,
            "cycles_per_repeat": cycles,
            "statistic": "min over all repeats (gate); median over rounds of per-round min",
            "cases": {"common": "https, no server_hostname (goal)", "override": "server_hostname='a.test' (reported)"},
        },
        "headers": headers,
        "rows": rows,
        "ns_per_cycle_samples": samples,
        "instructions_per_cycle": instructions,
        "goals": [goal.as_dict() for goal in goals],
    }
    save_section("sni_key", result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    return bench_main(run, worker, argv)


if __name__ == "__main__":
    sys.exit(main())
