"""The command line: ``python -m aiohttp_waiterfix {verify,status,enable,disable}``.

Every command is wired here; each one's work lives in its own module
(``_scenario`` for verify, ``_report`` for status, ``_enable`` for enable and
disable).  ``aiohttp-waiterfix-run`` is a separate program (``_run``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

from ._scenario import ScenarioConfig

DEMONSTRATED = ("waiters", "paused-eof")
"""The fixes ``verify`` shows live: each bug unpatched, then gone patched (the others have tests only)."""


def _child_env(fix_id: str, patched: bool) -> Dict[str, str]:
    """A fresh interpreter with every fix on, less ``fix_id`` for the unpatched run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOHTTP_WAITERFIX")}
    if not patched:
        env["AIOHTTP_WAITERFIX_SKIP"] = fix_id
    return env


def _run_waiters(config: ScenarioConfig, patched: bool, label: str) -> Optional[Dict[str, Any]]:
    """The aiohttp#9670 scenario in a fresh interpreter, echoing its answers per second as they come."""
    cmd = [sys.executable, "-m", "aiohttp_waiterfix._scenario", "--progress"]
    for name, value in vars(config).items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    print(f"  {label:<18} ok/s:", end="", flush=True)
    proc = subprocess.Popen(
        cmd, env=_child_env("waiters", patched), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None and proc.stdout is not None
    # The child writes one count per second on stderr: echo it live as progress.
    errors = []
    for chunk in iter(lambda: proc.stderr.read(1), ""):  # type: ignore[union-attr]
        errors.append(chunk)
        print(chunk, end="", flush=True)
    stdout = proc.stdout.read()
    if proc.wait() != 0:
        print(f" failed (exit {proc.returncode})")
        print("".join(errors).strip()[-2000:], file=sys.stderr)
        return None
    print()
    result: Dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _verify_waiters(args: argparse.Namespace) -> Optional[bool]:
    """Show the wedge and the fix; True: shown fixed, False: not fixed, None: not shown (a race)."""
    config = ScenarioConfig(
        duration=args.duration, slow_period=args.slow_period, late_after=args.late_after, workers=args.workers
    )
    print(
        f"  Loopback server slow ({config.slow_delay}s) for {config.slow_period}s, then alternating instant/slow; "
        f"client limit={config.limit}, timeout={config.timeout}s, {config.workers} workers, {config.duration}s a run."
    )
    runs = [("without the fix", False), ("with the fix", True)]
    results = [(label, _run_waiters(config, patched, label)) for label, patched in runs]
    print(f"  {'':<18} {'succeeded':>9} {'timeouts':>9} {'ok after ' + str(config.late_after) + 's':>14} {'ok/s':>6}")
    for label, result in results:
        if result is None:
            print(f"  {label:<18} (run failed)")
        else:
            print(
                f"  {label:<18} {result['ok']:>9} {result['timeouts']:>9} {result['ok_late']:>14} "
                f"{result['late_rate']:>6.1f}"
            )
    final = results[-1][1]
    serving = final is not None and final["ok_late"] > 0
    wedged = results[0][1] is not None and results[0][1]["ok_late"] == 0
    if final is None or not final["applied"]:
        print("  The fix did not apply here: `python -m aiohttp_waiterfix status` says why.")
        return False
    if serving and wedged:
        print("  FIXED: without the fix the connector wedged after the first timeouts; with it, it kept serving.")
        return True
    if serving:
        print("  The fix kept serving, but the run without it did not wedge this time (a race): run verify again.")
        return None
    print("  NOT FIXED: the connector stopped serving with the fix. Please report this.")
    return False


def _run_paused_eof(patched: bool) -> Optional[Dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "aiohttp_waiterfix._scenario_paused_eof", "--json"],
        env=_child_env("paused-eof", patched),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stderr.strip()[-2000:], file=sys.stderr)
        return None
    result: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _verify_paused_eof(args: argparse.Namespace) -> Optional[bool]:
    """Show the hang and the poisoned connection, then the fix; True: shown fixed, False: not fixed."""
    runs = [("without the fix", False), ("with the fix", True)]
    results = []
    for label, patched in runs:
        result = _run_paused_eof(patched)
        results.append(result)
        if result is None:
            print(f"  {label:<18} (run failed)")
            continue
        cases = ", ".join(f"{case['case']} {case['outcome']}" for case in result["cases"])
        print(f"  {label:<18} {result['ok']} of {result['requests']} second requests answered ({cases})")
    final = results[-1]
    clean = final is not None and final["clean"]
    broken = results[0] is not None and not results[0]["clean"]
    if final is None or not final["applied"]:
        print("  The fix did not apply here: `python -m aiohttp_waiterfix status` says why.")
        return False
    if clean and broken:
        print("  FIXED: without the fix a pooled connection hung or was poisoned; with it, every request was answered.")
        return True
    if clean:
        print("  With the fix every request was answered, but without it none failed this time: run verify again.")
        return None
    print("  NOT FIXED: a request hung or failed with the fix. Please report this.")
    return False


DEMOS = {"waiters": _verify_waiters, "paused-eof": _verify_paused_eof}


def cmd_verify(args: argparse.Namespace) -> int:
    """Show each demonstrable bug on this aiohttp without its fix, then with it (loopback only, ~15 s)."""
    from ._registry import FIXES
    from ._status import assess
    from ._versions import installed_aiohttp_version

    version = installed_aiohttp_version()
    if version is None:
        print("aiohttp-waiterfix verify: aiohttp is not installed here: nothing to verify (pip install aiohttp).")
        return 2
    verdicts = {fix.id: assess(fix, version) for fix in FIXES}
    needed = [fix_id for fix_id, status in verdicts.items() if status.affected]
    print(
        f"aiohttp-waiterfix verify: aiohttp {version} needs "
        + (", ".join(needed) if needed else "none of our fixes")
        + "."
    )
    outcomes: List[Optional[bool]] = []
    for number, fix in enumerate((fix for fix in FIXES if fix.id in DEMOS), 1):
        print(f"\n{number}. {fix.id} ({fix.refs}): {fix.title}")
        if not verdicts[fix.id].affected:
            # Upstream's own code is not ours to judge (3.14 has a read-timer hole of its own, for one).
            print(f"  Not shown: {verdicts[fix.id].reason}.")
            continue
        outcomes.append(DEMOS[fix.id](args))
    shown_elsewhere = [fix_id for fix_id in needed if fix_id not in DEMOS]
    if shown_elsewhere:
        print(f"\nNot demonstrated here (the test suite proves them): {', '.join(shown_elsewhere)}.")
    print()
    if False in outcomes:
        print("VERDICT: NOT FIXED: see above. `python -m aiohttp_waiterfix status` says what is applied.")
        return 1
    if None in outcomes:
        print("VERDICT: FIXED where shown; one bug did not show without its fix this time (a race): run it again.")
        return 0
    if outcomes:
        print("VERDICT: FIXED: each bug shows without its fix and is gone with it.")
    elif needed:
        print(f"VERDICT: aiohttp {version} needs only fixes not demonstrated here (the test suite proves them).")
    else:
        print(f"VERDICT: aiohttp {version} has every fix upstream; nothing to patch.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Is an application started in this environment protected? Exit 0 if so (or if no fix is needed), else 1."""
    from ._report import environment_report, text_lines

    report = environment_report()
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(text_lines(report)))
    return 0 if report["protected"] else 1


def cmd_enable(args: argparse.Namespace) -> int:
    """Activate the fixes in every start of this interpreter (writes sitecustomize.py)."""
    from ._enable import enable

    return enable(args.site_dir)


def cmd_disable(args: argparse.Namespace) -> int:
    """Remove what `enable` wrote."""
    from ._enable import disable

    return disable(args.site_dir)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiohttp_waiterfix",
        description="Run-time backports of aiohttp connection-pool fixes for pinned aiohttp releases.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    verify = sub.add_parser(
        "verify", help="show the bugs and the fixes on the loopback (about 15 s)", description=cmd_verify.__doc__
    )
    verify.add_argument("--duration", type=float, default=4.0, help="seconds per waiters run (default 4)")
    verify.add_argument("--slow-period", type=float, default=1.5, help="seconds of slow answers first (default 1.5)")
    verify.add_argument("--workers", type=int, default=60, help="concurrent requests of the waiters run (default 60)")
    verify.add_argument(
        "--late-after", type=float, default=2.5, help="count answers after this many seconds as 'late' (default 2.5)"
    )
    verify.set_defaults(func=cmd_verify)
    status = sub.add_parser(
        "status",
        help="is an application started here protected? (exit 1 if it would miss fixes it needs)",
        description=cmd_status.__doc__,
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)
    for name, func in (("enable", cmd_enable), ("disable", cmd_disable)):
        command = sub.add_parser(name, help=func.__doc__, description=func.__doc__)
        command.add_argument(
            "--site-dir",
            metavar="DIR",
            default=None,
            help="directory of the sitecustomize.py to change (default: this interpreter's site-packages)",
        )
        command.set_defaults(func=func)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return 1


if __name__ == "__main__":
    sys.exit(main())
