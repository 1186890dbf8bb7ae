"""The answer ``status`` gives: is an application started in this environment protected?

It asks a fresh interpreter of this environment (``_probe``), which imports
aiohttp the way an application does and never imports this package itself:
only what the environment activates at start-up (an ``enable`` block, the run
wrapper's bootstrap) counts, never the ``status`` command's own process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from . import _probe
from ._enable import block_in, installed_block_path
from ._startup import kill_switch_reason
from ._status import expected_status
from ._versions import installed_aiohttp_version

HOW_TO_TURN_ON = (
    "python -m aiohttp_waiterfix enable      (every start of this interpreter; needs write access)",
    "aiohttp-waiterfix-run <your command>    (one command and the Python processes it starts)",
    "import aiohttp_waiterfix                (at the top of the application, before or after aiohttp)",
)


def environment_report() -> Dict[str, Any]:
    """What a process started here gets: the ``status --json`` object."""
    from . import __version__

    seen = _probe.run(env=dict(os.environ), import_aiohttp=True)
    version = seen.get("aiohttp_version") or installed_aiohttp_version()
    expected = expected_status(version)
    started: Optional[Dict[str, Any]] = seen.get("status")  # None: nothing activated us at start-up
    if started is not None and started["fixes"]:
        fixes: List[Dict[str, Any]] = started["fixes"]
    else:
        why = _not_active_reason(seen, started)
        fixes = [dict(asdict(fix), reason=why if fix.affected else fix.reason) for fix in expected.fixes]
    applied = bool(started and started["applied"])
    protected = applied or expected.affected is False
    if "aiohttp_error" in seen:
        reason = f"aiohttp cannot be imported here: {seen['aiohttp_error']}"
    elif expected.affected is False or started is None:
        reason = expected.reason if expected.affected is False else _not_active_reason(seen, started)
    else:
        reason = started["reason"]
    return {
        "aiohttp_version": version,
        "affected": expected.affected,
        "applied": applied,
        "protected": protected,
        "reason": reason,
        "activated_by": started.get("activated_by") if started else None,
        "fixes": fixes,
        "waiterfix_version": __version__,
        "python": sys.executable,
        "sitecustomize": installed_block_path(),
        "sitecustomize_loaded": seen.get("sitecustomize"),
        "sitecustomize_runs_block": block_in(seen.get("sitecustomize")),
    }


def _not_active_reason(seen: Dict[str, Any], started: Optional[Dict[str, Any]]) -> str:
    if "error" in seen:
        return f"could not start {sys.executable} to check: {seen['error']}"
    if started is not None:
        return str(started["reason"])  # e.g. disabled by AIOHTTP_WAITERFIX=0
    # The run wrapper does nothing under the kill switch, so no process reports it: say it here.
    return kill_switch_reason() or "not activated: a process started here does not load aiohttp_waiterfix"


def text_lines(report: Dict[str, Any]) -> List[str]:
    """The report for people: the verdict first, then each fix, then what to do."""
    verdict = "yes" if report["protected"] else "NO"
    lines = [
        f"aiohttp {report['aiohttp_version']} with {report['python']}",
        f"protected: {verdict}: {report['reason']}",
    ]
    for fix in report["fixes"]:
        state = "applied" if fix["applied"] else "not needed" if fix["affected"] is False else "NOT applied"
        lines.append(f"  {fix['id']:<12} {state:<12} {fix['reason']}")
    block = report["sitecustomize"]
    if block is None:
        lines.append("sitecustomize: not enabled")
    elif report["sitecustomize_runs_block"]:
        lines.append(f"sitecustomize: enabled in {block}; every start of this interpreter runs it")
    else:
        winner = report["sitecustomize_loaded"] or "no sitecustomize"
        lines.append(f"sitecustomize: enabled in {block}, but this interpreter loads {winner} instead")
    if not report["protected"] and report["affected"]:
        if "AIOHTTP_WAITERFIX=" in report["reason"]:
            lines.append("The kill switch AIOHTTP_WAITERFIX is set in this environment: unset it first.")
        if not report["sitecustomize_runs_block"]:
            lines.append("Turn the fixes on in one of three ways:")
            lines.extend(f"  {way}" for way in HOW_TO_TURN_ON)
            lines.append(
                "(An application that imports aiohttp_waiterfix itself is protected, but this check cannot see it.)"
            )
    return lines
