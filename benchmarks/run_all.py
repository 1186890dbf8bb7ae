"""Run the benchmarks: builds its own environments, prints tables, exits 1 if a goal is clearly missed.

    python benchmarks/run_all.py                      # everything (~7-10 minutes on 2 cores)
    python benchmarks/run_all.py --only overhead      # one (or a comma-separated list)
    python benchmarks/run_all.py --quick              # fewer rounds: a smoke test, not for the README

Benchmarks: overhead, contended, scaling, startup, recovery, watchdog, read_path, sni_key (see README.md).
Environments are uv venvs under benchmarks/.venvs (or $WAITERFIX_BENCH_VENVS),
reused while their requirements do not change; aiohttp-waiterfix is reinstalled
from this checkout on every run.  Results go to benchmarks/results/latest.json
(each benchmark replaces only its own section) and docs/recovery.png.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, RESULTS, WorkerFailed, markdown_table

QUICK: Dict[str, Dict[str, Any]] = {
    # keyword arguments for bench_<name>.run() in --quick mode; the full run uses run()'s defaults
    "overhead": {"rounds": 2, "cycles": 20_000, "repeats": 5, "callgrind": False},
    "contended": {"rounds": 1, "total": 4_000, "repeats": 2, "callgrind": False},
    "scaling": {"rounds": 1},
    "startup": {"runs": 15, "aiohttp_runs": 6},
    "recovery": {"rounds": 1, "duration": 6},
    "watchdog": {"rounds": 1, "total": 5_000, "repeats": 1, "callgrind": False},
    "read_path": {"rounds": 1, "repeats": 3, "callgrind": False},
    "sni_key": {"rounds": 2, "cycles": 10_000, "repeats": 3, "callgrind": False},
}
BENCHMARKS = tuple(QUICK)


def markdown_report() -> str:
    """The tables and goal verdicts of results/latest.json, ready to paste into a README."""
    data = json.loads(RESULTS.read_text())
    machine = data.get("machine", {})
    out = [f"Measured {machine.get('when', '?')} at {machine.get('git_head', '?')}, {machine.get('cpus', '?')} CPUs."]
    for name in BENCHMARKS:
        section = data.get(name)
        if not section:
            continue
        out += ["", f"**{name}** ({json.dumps(section.get('config', {}))})", ""]
        out.append(markdown_table(section["headers"], section["rows"]))
        out.append("")
        out += [f"- {goal['verdict']}: {goal['name']} = {goal['value']:.3g}" for goal in section.get("goals", [])]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter runs (smoke test)")
    parser.add_argument(
        "--markdown", action="store_true", help="print results/latest.json as Markdown tables (runs nothing)"
    )
    parser.add_argument(
        "--no-callgrind", action="store_true", help="skip the instruction counts (overhead, contended, read_path)"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_report())
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    started = time.monotonic()
    verdicts: List[str] = []
    failed = False
    for name in names:
        kwargs = dict(QUICK[name]) if args.quick else {}
        if name in ("overhead", "contended", "watchdog", "read_path", "sni_key") and args.no_callgrind:
            kwargs["callgrind"] = False
        print(f"\n=== {name} " + "=" * (70 - len(name)), flush=True)
        t0 = time.monotonic()
        try:
            result = importlib.import_module(f"bench_{name}").run(**kwargs)
        except (WorkerFailed, RuntimeError, SystemExit) as exc:
            failed = True
            verdicts.append(f"[ERROR] {name}: {exc}")
            traceback.print_exc()
            continue
        for goal in result["goals"]:
            verdicts.append(
                f"[{goal['verdict']}] {goal['name']}: {goal['value']:.3g} "
                f"(goal {'>=' if goal['higher_is_better'] else '<='} {goal['target']:g}, "
                f"fail beyond {goal['fail_at']:g})"
            )
            failed = failed or goal["verdict"] == "FAIL"
        print(f"  ({name} took {time.monotonic() - t0:.0f}s)", flush=True)

    print("\n=== summary " + "=" * 62)
    for line in verdicts:
        print(line)
    print(
        f"results: {RESULTS.relative_to(REPO)}; total {time.monotonic() - started:.0f}s"
        + ("  (quick mode: numbers not for the README)" if args.quick else "")
    )
    print("NOISE = goal missed by less than the noise margin; only FAIL (or ERROR) fails the run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
