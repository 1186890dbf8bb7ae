"""What ``status()`` reports: per fix and for the whole release.  Pure functions, no aiohttp."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Optional, Tuple

from ._registry import FIXES, Fix
from ._versions import classify

if TYPE_CHECKING:
    from ._watchdog import WatchdogStatus

SKIP_REASON = "skipped by AIOHTTP_WAITERFIX_SKIP"


@dataclass(frozen=True)
class FixStatus:
    """One fix in this process."""

    id: str
    affected: Optional[bool]
    """True when this aiohttp release has the bug; None when we cannot tell."""
    applied: bool
    """True while our fix is in place."""
    reason: str


@dataclass(frozen=True)
class Status:
    """What the shim did in this process, and why."""

    aiohttp_version: Optional[str]
    """The imported (or installed, if not imported yet) aiohttp version."""
    affected: Optional[bool]
    """True when this release needs any of our fixes; None when unknown."""
    applied: bool
    """True while every fix this release needs is in place."""
    reason: str
    """One sentence saying what is, or is not, in place, and why."""
    activated_by: Optional[str] = None
    """How activation was requested: import, sitecustomize, run-wrapper, apply()."""
    fixes: Tuple[FixStatus, ...] = ()
    """Each fix: its id, whether this release is affected, whether it is applied, and why."""
    watchdog: Optional[WatchdogStatus] = None
    """The pool watchdog's mode and counts (None: it was never started in this process)."""


def fix_applied(status: Status, fix_id: str) -> bool:
    """Is fix ``fix_id`` in place according to ``status``?"""
    return any(fix.id == fix_id and fix.applied for fix in status.fixes)


def assess(fix: Fix, version: Optional[str]) -> FixStatus:
    """Whether ``fix`` is needed on aiohttp ``version``, before anything is tried."""
    affected, reason = classify(version, fix.first_affected, fix.fixed_in)
    if affected:
        reason = f"aiohttp {version} has the bug ({fix.title}; fixed upstream in {fix.fixed_in})"
    return FixStatus(fix.id, affected, False, reason)


def assess_all(version: Optional[str], skip: Iterable[str] = ()) -> Tuple[FixStatus, ...]:
    """``assess`` for every fix, with the skipped ones marked as such."""
    skipped = set(skip)
    statuses = []
    for fix in FIXES:
        status = assess(fix, version)
        if status.affected and fix.id in skipped:
            status = replace(status, reason=SKIP_REASON)
        statuses.append(status)
    return tuple(statuses)


def overall_affected(fixes: Iterable[FixStatus]) -> Optional[bool]:
    """True if the release needs any fix; False if it needs none; None if we cannot tell for some."""
    verdicts = [fix.affected for fix in fixes]
    if True in verdicts:
        return True
    return None if None in verdicts else False


def summarize(version: Optional[str], fixes: Tuple[FixStatus, ...], activated_by: Optional[str]) -> Status:
    """The release-level status made of the per-fix ones."""
    affected = overall_affected(fixes)
    needed = [fix for fix in fixes if fix.affected]
    applied = bool(needed) and all(fix.applied for fix in needed)
    if applied:
        reason = f"patched aiohttp {version}: {', '.join(fix.id for fix in needed)}"
    elif needed:
        done = [fix.id for fix in needed if fix.applied]
        missing = "; ".join(f"{fix.id}: {fix.reason}" for fix in needed if not fix.applied)
        reason = f"aiohttp {version}: " + (f"applied {', '.join(done)}; " if done else "") + f"not applied: {missing}"
    elif affected is None:
        reason = next(fix.reason for fix in fixes if fix.affected is None)
    else:
        reason = f"aiohttp {version} is fixed upstream (every fix we carry is in it); nothing to do"
    return Status(version, affected, applied, reason, activated_by, fixes)


def expected_status(version: Optional[str], skip: Iterable[str] = ()) -> Status:
    """What a process that imports aiohttp ``version`` should report before anything is applied."""
    return summarize(version, assess_all(version, skip), None)
