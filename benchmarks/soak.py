"""Soak run: the aiohttp#9670 scenario for N minutes, with the patch.

It reuses ``aiohttp_waiterfix._scenario.run_scenario`` (a loopback aiohttp
server, ``TCPConnector(limit=10)``, 30 workers, 0.25 s total timeout; answers
slow for a first period, then alternating instant and slow) in one of two modes:

* ``single`` (default): one scenario run for the whole duration -- one server,
  one connector, one slow period at the start, then minutes of alternating
  answers, where every slow answer is a timeout that cancels a held
  connection and wakes a waiter;
* ``rounds``: one scenario run per window, each with a new server and
  connector, so every window starts with the burst of simultaneous timeouts
  that wedges an unpatched connector.

It prints the requests that succeeded per window (default 10 s) and the
process's memory, and at the end the memory at start, after warm-up, at the
end and the peak.  Exit status 0 when all holds, 1 otherwise (2: not patched):

* every window after the first has succeeded requests (the connector did not wedge);
* no run ended with a slot held or a waiter queued (``connector._acquired`` /
  ``connector._waiters`` empty once every worker stopped);
* memory did not grow by more than ``--max-growth-mb`` (default 20 MB) nor
  ``--max-growth-pct`` (default 50 %) between the end of warm-up and the end.

Usage::

    python benchmarks/soak.py [--minutes 5] [--window 10] [--mode single|rounds] [--json out.json]

Needs aiohttp and aiohttp-waiterfix installed (``nox -s soak`` builds that);
``--allow-unpatched`` runs it anyway (to watch the unpatched release wedge).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional

import aiohttp

import aiohttp_waiterfix  # before aiohttp: import activation patches it
from aiohttp_waiterfix._scenario import ScenarioConfig, ScenarioResult, run_scenario


def rss_mb() -> float:
    """Resident set size now, in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="total duration (default 5)")
    parser.add_argument("--window", type=int, default=10, help="seconds per window (default 10)")
    parser.add_argument(
        "--mode",
        choices=("single", "rounds"),
        default="single",
        help="single: one connector for the whole run (default); rounds: a new scenario per window",
    )
    parser.add_argument("--slow-period", type=float, default=1.0, help="slow seconds at the start of each round")
    parser.add_argument("--workers", type=int, default=30)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3, help="windows before the memory baseline (default 3)")
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    parser.add_argument("--max-growth-pct", type=float, default=50.0)
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--allow-unpatched", action="store_true", help="run even if the patch is not applied")
    return parser.parse_args(argv)


def _print_header(args: argparse.Namespace, config: ScenarioConfig, rss_start: float) -> None:
    print(f"soak: aiohttp {aiohttp.__version__}, {aiohttp_waiterfix.status().reason}", flush=True)
    if args.mode == "single":
        what = f"one connector for {config.duration:g}s (slow {config.slow_period:g}s first, then alternating)"
    else:
        what = f"rounds of {config.duration:g}s, each a new server+connector starting with {config.slow_period:g}s slow"
    print(
        f"soak: {what}; limit={config.limit}, {config.workers} workers, timeout {config.timeout}s, "
        f"windows of {args.window:g}s; RSS at start {rss_start:.1f} MB",
        flush=True,
    )
    print(f"{'window':>6} {'t/s':>6} {'ok':>6} {'ok/s':>6} {'RSS MB':>7}", flush=True)


def _print_window(window: Dict[str, Any]) -> None:
    print(
        f"{window['window']:>6} {window['elapsed']:>6} {window['ok']:>6} {window['ok_per_s']:>6} "
        f"{window['rss_mb']:>7.1f}",
        flush=True,
    )


async def soak_single(args: argparse.Namespace, rss_start: float) -> Dict[str, Any]:
    """One run_scenario for the whole duration: one connector soaks every timeout."""
    window_s = int(args.window)
    config = ScenarioConfig(
        duration=float(max(window_s, int(args.minutes * 60) // window_s * window_s)),
        slow_period=args.slow_period,
        workers=args.workers,
        limit=args.limit,
        late_after=args.slow_period + 1.0,
    )
    _print_header(args, config, rss_start)
    windows: List[Dict[str, Any]] = []
    pending: List[int] = []
    started = time.monotonic()

    def on_second(second: int, ok: int) -> None:
        pending.append(ok)
        if second % window_s == 0:
            window = {
                "window": second // window_s,
                "elapsed": round(time.monotonic() - started, 1),
                "ok": sum(pending),
                "ok_per_s": round(sum(pending) / window_s, 1),
                "rss_mb": round(rss_mb(), 1),
            }
            pending.clear()
            windows.append(window)
            _print_window(window)

    result = await run_scenario(config, on_second)
    # The live counts can miss answers that land just after a window was printed:
    # recount every window from the final per-second buckets.
    for window in windows:
        first = (window["window"] - 1) * window_s
        window["ok"] = sum(result.ok_per_second[first : first + window_s])
        window["ok_per_s"] = round(window["ok"] / window_s, 1)
    return {
        "config": asdict(config),
        "windows": windows,
        "ok_total": result.ok,
        "timeouts_total": result.timeouts,
        "errors_total": result.errors,
        "leaks": [(result.acquired_at_end, result.waiters_at_end)],
    }


async def soak_rounds(args: argparse.Namespace, rss_start: float) -> Dict[str, Any]:
    """run_scenario again and again: every window starts with a slow period (a burst of timeouts)."""
    config = ScenarioConfig(
        duration=args.window,
        slow_period=args.slow_period,
        workers=args.workers,
        limit=args.limit,
        late_after=args.slow_period + 1.0,
    )
    _print_header(args, config, rss_start)
    rounds = max(1, round(args.minutes * 60 / args.window))
    windows: List[Dict[str, Any]] = []
    totals = {"ok": 0, "timeouts": 0, "errors": 0}
    leaks = []
    started = time.monotonic()
    for number in range(1, rounds + 1):
        result: ScenarioResult = await run_scenario(config)
        gc.collect()
        window = {
            "window": number,
            "elapsed": round(time.monotonic() - started, 1),
            "ok": result.ok,
            "ok_per_s": round(result.ok / args.window, 1),
            "rss_mb": round(rss_mb(), 1),
        }
        windows.append(window)
        _print_window(window)
        totals["ok"] += result.ok
        totals["timeouts"] += result.timeouts
        totals["errors"] += result.errors
        leaks.append((result.acquired_at_end, result.waiters_at_end))
    return {
        "config": asdict(config),
        "windows": windows,
        "ok_total": totals["ok"],
        "timeouts_total": totals["timeouts"],
        "errors_total": totals["errors"],
        "leaks": leaks,
    }


async def soak(args: argparse.Namespace) -> Dict[str, Any]:
    started = time.monotonic()
    rss_start = rss_mb()
    run = soak_single if args.mode == "single" else soak_rounds
    summary = await run(args, rss_start)
    windows = summary["windows"]
    gc.collect()
    rss_end = rss_mb()
    baseline_at = min(args.warmup, len(windows)) - 1
    rss_baseline = windows[baseline_at]["rss_mb"] if baseline_at >= 0 else rss_start
    growth = rss_end - rss_baseline
    growth_pct = 100.0 * growth / rss_baseline if rss_baseline else 0.0
    problems: List[str] = []
    for window in windows[1:]:
        if window["ok"] == 0:
            problems.append(f"window {window['window']}: no request succeeded (wedged)")
    for number, (slots, waiters) in enumerate(summary.pop("leaks"), 1):
        if slots or waiters:
            problems.append(
                f"run {number}: {slots} slot(s) held, {waiters} waiter(s) queued after every worker stopped"
            )
    if len(windows) > args.warmup and (growth > args.max_growth_mb or growth_pct > args.max_growth_pct):
        problems.append(
            f"memory grew {growth:.1f} MB ({growth_pct:.0f}%) after warm-up "
            f"(limits {args.max_growth_mb:g} MB / {args.max_growth_pct:g}%)"
        )
    summary.update(
        {
            "mode": args.mode,
            "aiohttp_version": aiohttp.__version__,
            "applied": aiohttp_waiterfix.status().applied,
            "duration_s": round(time.monotonic() - started, 1),
            "min_ok_per_s_after_first": min((w["ok_per_s"] for w in windows[1:]), default=None),
            "rss_mb": {
                "start": round(rss_start, 1),
                "after_warmup": rss_baseline,
                "end": round(rss_end, 1),
                "max": round(peak_rss_mb(), 1),
                "growth_after_warmup": round(growth, 1),
            },
            "problems": problems,
        }
    )
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    status = aiohttp_waiterfix.status()
    if not status.applied and not args.allow_unpatched:
        print(f"soak: the patch is not applied ({status.reason}); use --allow-unpatched to run anyway", file=sys.stderr)
        return 2
    summary = asyncio.run(soak(args))
    rss = summary["rss_mb"]
    print(
        f"soak: {summary['duration_s']}s, {summary['ok_total']} ok, {summary['timeouts_total']} timeouts, "
        f"{summary['errors_total']} errors; ok/s per window min {summary['min_ok_per_s_after_first']} "
        f"(after the first)",
        flush=True,
    )
    print(
        f"soak: RSS start {rss['start']} MB, after warm-up {rss['after_warmup']} MB, end {rss['end']} MB, "
        f"max {rss['max']} MB (growth after warm-up {rss['growth_after_warmup']} MB)",
        flush=True,
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=1)
    for problem in summary["problems"]:
        print(f"soak: FAIL: {problem}", flush=True)
    if summary["problems"]:
        return 1
    print("soak: OK (no wedge, no slot or waiter leak, memory stable)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
