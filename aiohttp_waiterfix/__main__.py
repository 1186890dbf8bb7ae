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
from typing import Any, Dict, List, Optional, Tuple

from ._scenario import ScenarioConfig


def _run_scenario_subprocess(config: ScenarioConfig, patched: bool, label: str) -> Optional[Dict[str, Any]]:
    """Run the scenario in a fresh interpreter (so 'unpatched' is really unpatched)."""
    env = dict(os.environ, AIOHTTP_WAITERFIX="1" if patched else "0")
    cmd = [sys.executable, "-m", "aiohttp_waiterfix._scenario", "--progress"]
    for name, value in vars(config).items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    print(f"  {label:<10} ok/s:", end="", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def _row(label: str, result: Optional[Dict[str, Any]]) -> str:
    if result is None:
        return f"  {label:<10} {'(run failed)':>10}"
    return (
        f"  {label:<10} {result['ok']:>10} {result['timeouts']:>9} {result['ok_late']:>15} {result['late_rate']:>10.1f}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    """Show the deadlock on the unpatched connector and the fix on the patched one."""
    from ._registry import WAITERS
    from ._status import assess
    from ._versions import installed_aiohttp_version

    version = installed_aiohttp_version()
    waiters = assess(WAITERS, version)
    reason = waiters.reason
    config = ScenarioConfig(duration=args.duration, slow_period=args.slow_period, late_after=args.late_after)
    print(f"aiohttp-waiterfix verify: aiohttp {version}: {reason}")
    if version is None:
        print("aiohttp is not installed here: nothing to verify (pip install aiohttp).")
        return 2
    print(
        f"Scenario (aiohttp#9670): loopback server slow ({config.slow_delay}s) for {config.slow_period}s, then "
        f"alternating instant/slow; client limit={config.limit}, timeout={config.timeout}s, "
        f"{config.workers} workers, {config.duration}s per run."
    )
    runs: List[Tuple[str, Optional[Dict[str, Any]]]] = []
    if waiters.affected:
        runs.append(("unpatched", _run_scenario_subprocess(config, patched=False, label="unpatched")))
        runs.append(("patched", _run_scenario_subprocess(config, patched=True, label="patched")))
    else:
        runs.append(("as is", _run_scenario_subprocess(config, patched=True, label="as is")))

    print(
        f"\n  {'run':<10} {'succeeded':>10} {'timeouts':>9} {'ok after ' + str(config.late_after) + 's':>15} "
        f"{'ok/s late':>10}"
    )
    for label, result in runs:
        print(_row(label, result))
    print()

    final = runs[-1][1]
    serving = final is not None and final["ok_late"] > 0
    if waiters.affected:
        patched = final is not None and final["applied"]
        unpatched = runs[0][1]
        wedged = unpatched is not None and unpatched["ok_late"] == 0
        if not patched:
            print("VERDICT: the patch did not apply here; run `python -m aiohttp_waiterfix status` for the reason.")
            return 1
        if serving and wedged:
            print(
                "VERDICT: FIXED. Unpatched, the connector wedged after the first timeouts "
                "(no request succeeded any more); patched, it kept serving."
            )
        elif serving:
            print(
                "VERDICT: FIXED (patched run kept serving). The unpatched run did not wedge this time: the bug is "
                "a race, try again or with --slow-period 2 to see it."
            )
        else:
            print("VERDICT: NOT FIXED: the patched connector stopped serving. Please report this.")
        return 0 if serving else 1
    if waiters.affected is False:
        print(
            f"VERDICT: the fix is upstream in this aiohttp ({version}); no patch needed. "
            + ("It kept serving." if serving else "It did NOT keep serving: report this upstream.")
        )
        return 0 if serving else 1
    print("VERDICT: this aiohttp release is not one we know; the shim leaves it untouched.")
    return 0 if serving else 1


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
        "verify", help="show the deadlock and the fix on the loopback (about 10 s)", description=cmd_verify.__doc__
    )
    verify.add_argument("--duration", type=float, default=4.0, help="seconds per run (default 4)")
    verify.add_argument("--slow-period", type=float, default=1.0, help="seconds of slow answers first (default 1)")
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
