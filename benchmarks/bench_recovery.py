"""Benchmark 5: recovery -- the issue's scenario, successful requests per second over time.

Runs ``python -m aiohttp_waiterfix._scenario --duration 15 --slow-period 1``
(the one reproduction of aiohttp#9670 this project has: a loopback aiohttp
server, slow for the first second, then alternating instant and 0.3 s
answers; 30 workers on ``TCPConnector(limit=10)`` with a 0.25 s total
timeout) in each environment, interleaved over ``rounds`` rounds.

The *late rate* is the successful requests per second after 2.5 s, once the
slow period's timeouts are over.  Unpatched 3.10.10 wedges (late rate ~0);
3.10.11 recovers.  Goal: each patched release's late rate >= 3.10.11's, up
to counting noise (>= 0.98x: identical code paths differ by a few answers
in ~500); it fails below 0.9x.  Rates are means over the rounds.

A run is *wedged* when its late rate is below 10% of 3.10.11's mean.  The
unpatched release wedges in most runs, not all: whether a woken waiter is
cancelled in the same loop turn as the connections' timeouts depends on
timing (on this shared machine its load too).  Every run's per-second series
is drawn into docs/recovery.png by plot_recovery.py, in the matplotlib-only
environment (a mean over runs would draw a half-wedged line no run had).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PATCHED,
    PATCHED_395,
    REPO,
    UNPATCHED,
    UPSTREAM,
    Goal,
    bench_main,
    interleaved,
    plot_python,
    prepare,
    run_json,
    save_section,
    table,
)

ENVS = (UPSTREAM, PATCHED, PATCHED_395, UNPATCHED)
PLOT = REPO / "docs" / "recovery.png"
PLOT_SCRIPT = Path(__file__).resolve().parent / "plot_recovery.py"
GOAL_RATIO = 0.98
"""'At least 3.10.11's rate' up to counting noise: ~500 late answers per run, 1-2% apart between identical runs."""
FAIL_RATIO = 0.9
WEDGED_BELOW = 0.1
"""A late rate below this fraction of 3.10.11's is reported as wedged."""


def run(rounds: int = 2, duration: int = 15, slow_period: float = 1.0, plot: bool = True) -> Dict[str, Any]:
    prepare(ENVS)
    args = ["-m", "aiohttp_waiterfix._scenario", "--duration", str(duration), "--slow-period", str(slow_period)]
    print(f"recovery: {' '.join(args[1:])}, {rounds} interleaved rounds x {len(ENVS)} envs")
    runs: Dict[str, List[Dict[str, Any]]] = {env.name: [] for env in ENVS}
    for round_no, env in interleaved(ENVS, rounds):
        data = run_json(env, args, timeout=duration + 60)
        runs[env.name].append(data)
        print(
            f"  round {round_no + 1} {env.label:18s} late {data['late_rate']:6.1f} req/s  ok {data['ok']:5d}  "
            f"timeouts {data['timeouts']:5d}  per second {data['ok_per_second']}",
            flush=True,
        )

    def mean(values: List[float]) -> float:
        return sum(values) / len(values)

    late = {name: mean([r["late_rate"] for r in rs]) for name, rs in runs.items()}
    ref = late[UPSTREAM.name]
    wedged = {name: sum(r["late_rate"] < WEDGED_BELOW * ref for r in rs) for name, rs in runs.items()}
    rows = []
    for env in ENVS:
        rs = runs[env.name]
        rate = late[env.name]
        rows.append(
            [
                env.label,
                rate,
                rate / ref if ref else None,
                " / ".join(f"{r['late_rate']:.1f}" for r in rs),
                mean([r["ok"] for r in rs]),
                mean([r["timeouts"] for r in rs]),
                f"{wedged[env.name]}/{len(rs)}",
            ]
        )
    headers = ["env", "late req/s (mean)", "x 3.10.11", "per round", "ok (mean)", "timeouts (mean)", "wedged runs"]
    print()
    print(table(headers, rows))
    goals = [
        Goal(
            f"recovery: {env.label} late rate / 3.10.11's",
            late[env.name] / ref if ref else 0.0,
            GOAL_RATIO,
            FAIL_RATIO,
            higher_is_better=True,
            unit="x",
        )
        for env in (PATCHED, PATCHED_395)
    ]
    for goal in goals:
        print("  " + goal.describe())

    config = runs[UPSTREAM.name][0]["config"]
    series = {
        env.label: [mean(list(col)) for col in zip(*(r["ok_per_second"] for r in runs[env.name]))] for env in ENVS
    }
    result = {
        "config": {**config, "rounds": rounds, "statistic": "mean over rounds"},
        "headers": headers,
        "rows": rows,
        "late_rate": late,
        "wedged_runs": wedged,
        "ok_per_second_mean": series,
        "runs": runs,
        "goals": [g.as_dict() for g in goals],
    }
    if plot:
        make_plot(result)
    save_section("recovery", result)
    return result


def make_plot(result: Dict[str, Any]) -> None:
    python = plot_python()
    payload = {
        "config": result["config"],
        "runs": {env.label: [r["ok_per_second"] for r in result["runs"][env.name]] for env in ENVS},
        "wedged_runs": {env.label: result["wedged_runs"][env.name] for env in ENVS},
        "late_rate": {env.label: result["late_rate"][env.name] for env in ENVS},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
    proc = subprocess.run(
        [python, str(PLOT_SCRIPT), fh.name, str(PLOT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    Path(fh.name).unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"plotting failed:\n{proc.stdout}")
    print(f"  plot written to {PLOT.relative_to(REPO)}")


def main(argv: Optional[List[str]] = None) -> int:
    return bench_main(run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
