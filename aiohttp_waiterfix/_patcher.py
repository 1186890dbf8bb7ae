"""Applying and reverting the fixes: the gates, the originals, the lock.

Each fix of ``_registry.FIXES`` stands alone: it is applied only on the
releases it is declared for, only when every attribute it replaces or wraps
is the code recorded for that release, and all of its changes or none.  A
refused fix warns once with its reason and does not stop the others.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from dataclasses import replace
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from ._registry import ADD, FIX_IDS, FIXES, WRAP, Change, Fix, Variant
from ._startup import SKIP_ENV_VAR, requested_skips
from ._startup import warn as emit_warning
from ._status import SKIP_REASON, FixStatus, Status, assess, summarize
from ._versions import RELEASE_INDEX, installed_aiohttp_version

logger = logging.getLogger("aiohttp_waiterfix")
logger.addHandler(logging.NullHandler())  # a library: the application decides where logs go

_ABSENT: Any = object()


class Installed(NamedTuple):
    """One attribute we set: where, what was there before (or _ABSENT), and what we put."""

    owner: type
    name: str
    original: Any
    ours: Any


_lock = threading.RLock()
_installed: Dict[str, List[Installed]] = {}
"""Fix id -> what it installed, while it is applied."""
_status = Status(None, None, False, "not activated: apply() has not been called")
_warned: Set[str] = set()


def current() -> Status:
    """The status of this process, with the watchdog's counts as of now."""
    status = _current()
    watchdog = sys.modules.get(f"{__package__}._watchdog")
    return status if watchdog is None else replace(status, watchdog=watchdog.snapshot())


def _current() -> Status:
    from . import _startup

    with _lock:
        label = _startup.pending_label
        pending = label is not None and _startup.TARGET_MODULE not in sys.modules
        if _status.activated_by is None and pending:
            return Status(
                installed_aiohttp_version(),
                None,
                False,
                "waiting: the fixes apply when aiohttp.connector is imported",
                label,
            )
        if _status.activated_by is None and _startup.disabled_reason is not None:
            return Status(installed_aiohttp_version(), None, False, _startup.disabled_reason)
        return _status


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        emit_warning(message)


def _set(status: Status) -> Status:
    global _status
    _status = status
    refused = [fix for fix in status.fixes if fix.affected and not fix.applied and fix.reason.startswith("refused")]
    new = [fix for fix in refused if f"{fix.id}: {fix.reason}" not in _warned]
    if new:  # one warning naming every newly refused fix
        _warned.update(f"{fix.id}: {fix.reason}" for fix in new)
        details = "; ".join(f"{fix.id}: {fix.reason}" for fix in new)
        emit_warning(f"aiohttp-waiterfix: not applied on aiohttp {status.aiohttp_version}: {details}")
    if status.affected is None and status.activated_by is not None:
        _warn_once(f"aiohttp-waiterfix not applied: {status.reason}")
    level = logging.WARNING if refused or status.affected is None else logging.INFO
    logger.log(level, "%s", status.reason)
    return status


def apply(activated_by: str = "apply()", skip: Optional[Iterable[str]] = None) -> Status:
    """Apply every fix this aiohttp release needs and whose code is the code we know.

    Never raises for an environment problem: the result says what happened.
    """
    try:
        # Outside our lock (the import hook takes it too), and the package first:
        # importing the submodule first takes the import locks in the opposite
        # order to an application's `import aiohttp` in another thread.
        import aiohttp
        import aiohttp.connector
    except Exception as exc:  # a missing or broken aiohttp must not break the host
        with _lock:
            if _installed:
                return _status
            fixes = tuple(FixStatus(fix.id, None, False, "aiohttp cannot be imported") for fix in FIXES)
            return _set(Status(None, None, False, f"aiohttp cannot be imported: {exc!r}", activated_by, fixes))
    return apply_to_module(aiohttp, activated_by, skip)


def apply_to_module(aiohttp_module: Any, activated_by: str, skip: Optional[Iterable[str]] = None) -> Status:
    """Apply the fixes to an imported aiohttp (also the import hook's entry); never raises."""
    with _lock:
        if _status.applied:
            return _status
        version = getattr(aiohttp_module, "__version__", None)
        skipped = _skip_set(skip)
        fixes = tuple(_apply_fix(fix, version, skipped, skip is None) for fix in FIXES)
        return _set(summarize(version, fixes, activated_by))


def _skip_set(skip: Optional[Iterable[str]]) -> Set[str]:
    names = requested_skips() if skip is None else tuple(skip)
    unknown = sorted(set(names) - set(FIX_IDS))
    if unknown:
        source = SKIP_ENV_VAR if skip is None else "skip"
        _warn_once(f"aiohttp-waiterfix: {source} names unknown fixes {unknown}; known: {', '.join(FIX_IDS)}")
    return set(names)


def _apply_fix(fix: Fix, version: Optional[str], skipped: Set[str], skip_from_env: bool) -> FixStatus:
    previous = next((status for status in _status.fixes if status.id == fix.id), None)
    if fix.id in _installed and previous is not None:
        return previous
    status = assess(fix, version)
    if not status.affected:
        return status
    if fix.id in skipped:
        return replace(status, reason=SKIP_REASON if skip_from_env else "skipped by apply(skip=...)")
    assert version is not None  # affected releases are known releases
    release = str(_parse(version))
    variant = variant_for(fix, release)
    if variant is None:
        return replace(status, reason=f"refused: no code of ours is declared for aiohttp {release}")
    try:
        targets = [_resolve(change) for change in variant.changes]
        problem = next((p for p in (_check(fix, release, c, o) for c, o in zip(variant.changes, targets)) if p), None)
        if problem:
            return replace(status, reason=f"refused: {problem}")
        code = importlib.import_module(f"{__package__}.fixes.{fix.module}")
        _install(fix, variant, targets, code)
    except Exception as exc:  # aiohttp's code is not what the declaration says
        return replace(status, reason=f"refused: {exc!r}")
    return FixStatus(fix.id, True, True, f"applied: backport of aiohttp {fix.fixed_in}'s fix ({fix.refs})")


def variant_for(fix: Fix, release: str) -> Optional[Variant]:
    position = RELEASE_INDEX[release]
    return next((v for v in fix.variants if RELEASE_INDEX[v.first] <= position <= RELEASE_INDEX[v.last]), None)


def _parse(version: str) -> Any:
    from packaging.version import Version

    return Version(version)


def _resolve(change: Change) -> type:
    module = sys.modules.get(change.module) or importlib.import_module(change.module)
    owner = getattr(module, change.owner)
    if not isinstance(owner, type):
        raise TypeError(f"{change.module}.{change.owner} is not a class")
    return owner


def _check(fix: Fix, release: str, change: Change, owner: type) -> Optional[str]:
    """Why ``change`` cannot be made to ``owner`` on ``release``, or None."""
    from ._fingerprint import function_fingerprint, recorded, underlying_function

    original = vars(owner).get(change.name, _ABSENT)
    if change.kind == ADD:
        if original is not _ABSENT:
            return f"{change.target} already exists (patched by someone else?)"
        return None
    if original is _ABSENT:
        return f"{change.target} does not exist"
    if not change.fingerprinted:
        if type(underlying_function(original)).__name__ != "function":
            return f"{change.target} is a {type(original).__name__}, not a plain function (wrapped by someone else?)"
        return None
    fingerprint, why = function_fingerprint(original)
    if fingerprint is None:
        return f"{change.target} {why}"
    if not recorded(fix.id, change.target, fingerprint, release):
        return f"{change.target} differs from aiohttp {release}'s code (locally patched or vendored?)"
    return None


def _install(fix: Fix, variant: Variant, owners: List[type], code: Any) -> None:
    """Make every change of ``variant``, or none (a failure puts back what was set)."""
    import wrapt

    done: List[Installed] = []
    try:
        for change, owner in zip(variant.changes, owners):
            original = vars(owner).get(change.name, _ABSENT)
            new = getattr(code, change.using)
            if change.kind == WRAP:
                wrapt.wrap_function_wrapper(owner, change.name, new)
            else:
                wrapt.apply_patch(owner, change.name, new)
            done.append(Installed(owner, change.name, original, vars(owner)[change.name]))
    except BaseException:
        _restore(done)
        raise
    _installed[fix.id] = done


def _restore(installed: Iterable[Installed]) -> None:
    for item in reversed(list(installed)):
        if item.original is _ABSENT:
            delattr(item.owner, item.name)
        else:
            setattr(item.owner, item.name, item.original)


def revert() -> Status:
    """Put back the original attributes (the very same objects) of every applied fix."""
    with _lock:
        if not _installed:
            return _status
        fixes = []
        for fix in _status.fixes:
            installed = _installed.get(fix.id)
            if installed is None:
                fixes.append(fix)
                continue
            covered = [item for item in installed if vars(item.owner).get(item.name, _ABSENT) is not item.ours]
            if covered:
                # Someone wrapped ours after us: restoring the originals would silently drop their wrappers.
                name = f"{covered[0].owner.__name__}.{covered[0].name}"
                emit_warning(f"revert of {fix.id!r} refused: {name} was replaced or wrapped after it; undo that first")
                fixes.append(fix)
                continue
            _restore(installed)
            del _installed[fix.id]
            fixes.append(replace(fix, applied=False, reason="reverted: the original attributes are back"))
        status = summarize(_status.aiohttp_version, tuple(fixes), _status.activated_by)
        if not _installed:
            status = replace(status, reason="reverted: aiohttp's original code is back")
        return _set(status)


def applied_fixes() -> Tuple[str, ...]:
    """Ids of the fixes in place now."""
    with _lock:
        return tuple(_installed)
