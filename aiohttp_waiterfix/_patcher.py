"""Applying and reverting the patch: gates, originals, the lock and the status."""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set

from ._startup import warn as emit_warning

logger = logging.getLogger("aiohttp_waiterfix")
logger.addHandler(logging.NullHandler())  # a library: the application decides where logs go

ADDED_METHOD = "_wait_for_available_connection"
WRAPPED_METHODS = ("__init__", "_close")


@dataclass(frozen=True)
class Status:
    """What the shim did in this process, and why."""

    aiohttp_version: Optional[str]
    """The imported (or installed, if not imported yet) aiohttp version."""
    affected: Optional[bool]
    """True when this aiohttp release has the waiter bug; None when unknown."""
    applied: bool
    """True while the patch is in place."""
    reason: str
    """One sentence saying why the patch is, or is not, applied."""
    activated_by: Optional[str] = None
    """How activation was requested: import, sitecustomize, run-wrapper, apply()."""


_lock = threading.RLock()
_patched_class: Optional[type] = None
_originals: Dict[str, Any] = {}
_installed: Dict[str, Any] = {}
"""What we put on the class, to check nobody wrapped it after us before reverting."""
_status = Status(None, None, False, "not activated: apply() has not been called")
_warned_reasons: Set[str] = set()


def current() -> Status:
    from . import _startup

    with _lock:
        label = _startup.pending_label
        pending = label is not None and _startup.TARGET_MODULE not in sys.modules
        if _status.activated_by is None and pending:
            return Status(
                installed_aiohttp_version(),
                None,
                False,
                "waiting: the patch applies when aiohttp.connector is imported",
                label,
            )
        if _status.activated_by is None and _startup.disabled_reason is not None:
            return Status(installed_aiohttp_version(), None, False, _startup.disabled_reason)
        return _status


def installed_aiohttp_version() -> Optional[str]:
    """The installed aiohttp's version, read without importing it."""
    try:
        from importlib.metadata import version

        return version("aiohttp")
    except Exception:
        return None


def _set(status: Status, *, warn: bool = False) -> Status:
    global _status
    _status = status
    if warn and status.reason not in _warned_reasons:
        _warned_reasons.add(status.reason)
        emit_warning(f"aiohttp-waiterfix not applied: {status.reason}")
    logger.log(logging.INFO if status.applied or not warn else logging.WARNING, "%s", status.reason)
    return status


def apply(activated_by: str = "apply()") -> Status:
    """Patch aiohttp's connector if this release is affected and its code is the code we know.

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
            if _status.applied:
                return _status
            return _set(Status(None, None, False, f"aiohttp cannot be imported: {exc!r}", activated_by), warn=True)
    return apply_to_module(aiohttp.connector, activated_by)


def apply_to_module(connector_module: Any, activated_by: str) -> Status:
    """Apply the patch to an imported ``aiohttp.connector`` (also the import hook's entry)."""
    from ._fingerprint import check_methods
    from ._versions import AFFECTED, FIXED, RELEASE_INDEX, affected, classify

    with _lock:
        if _status.applied:
            return _status
        aiohttp_module = sys.modules.get("aiohttp")
        version = getattr(aiohttp_module, "__version__", None)
        verdict, reason, release = classify(version)
        if verdict != AFFECTED or release is None:
            return _set(
                Status(version, affected(verdict), False, reason, activated_by),
                warn=verdict != FIXED,
            )
        cls = getattr(connector_module, "BaseConnector", None)
        if not isinstance(cls, type):
            return _set(
                Status(version, True, False, "refused: aiohttp.connector has no BaseConnector class", activated_by),
                warn=True,
            )
        if ADDED_METHOD in vars(cls):
            mismatch: Optional[str] = f"BaseConnector already has {ADDED_METHOD} (patched by someone else?)"
        else:
            mismatch = check_methods(cls, release, RELEASE_INDEX)
        if mismatch is not None:
            return _set(Status(version, True, False, f"refused: {mismatch}", activated_by), warn=True)
        _patch(cls)
        return _set(
            Status(
                version,
                True,
                True,
                f"patched aiohttp {version}: cancellation-safe waiters (aiohttp#9671)",
                activated_by,
            )
        )


def _patch(cls: type) -> None:
    global _patched_class
    import wrapt

    from . import _connector

    for name in (*_connector.PATCHED_METHODS, "_get", *WRAPPED_METHODS):
        _originals[name] = vars(cls)[name]
    try:
        for name, replacement in _connector.PATCHED_METHODS.items():
            wrapt.apply_patch(cls, name, replacement)
        wrapt.apply_patch(cls, "_get", _connector.make_get(_originals["_get"]))
        wrapt.apply_patch(cls, ADDED_METHOD, _connector._wait_for_available_connection)
        wrapt.wrap_function_wrapper(cls, "__init__", _connector.wrap_init)
        wrapt.wrap_function_wrapper(cls, "_close", _connector.wrap_close)
        _installed.update((name, vars(cls)[name]) for name in (*_originals, ADDED_METHOD))
        _patched_class = cls
    except BaseException:
        _restore(cls)
        raise


def _restore(cls: type) -> None:
    global _patched_class
    for name, original in _originals.items():
        setattr(cls, name, original)
    if ADDED_METHOD in vars(cls):
        delattr(cls, ADDED_METHOD)
    _originals.clear()
    _installed.clear()
    _patched_class = None


def revert() -> Status:
    """Put back the original methods (the very same objects) and remove the added one."""
    with _lock:
        if not _status.applied:
            return _status
        cls = _patched_class
        assert cls is not None  # set by _patch() whenever the status says applied
        covered = [name for name, ours in _installed.items() if vars(cls).get(name) is not ours]
        if covered:
            # Someone wrapped our methods after us: restoring the originals would silently drop their wrappers.
            reason = (
                f"revert refused: BaseConnector.{covered[0]} was replaced or wrapped after the patch; revert that first"
            )
            emit_warning(reason)
            return _status
        _restore(cls)
        return _set(
            Status(
                _status.aiohttp_version,
                True,
                False,
                "reverted: the original connector methods are back",
                _status.activated_by,
            )
        )
