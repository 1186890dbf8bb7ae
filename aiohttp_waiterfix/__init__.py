"""Run-time backports of aiohttp connection-pool fixes for pinned aiohttp releases.

Each fix (``_registry.FIXES``) is applied as soon as ``aiohttp.connector`` is
imported, on the releases that have its bug and only where the code it
replaces is the code we know; everywhere else nothing changes and
``status()`` says why.  ``AIOHTTP_WAITERFIX=0`` turns activation off,
``AIOHTTP_WAITERFIX_SKIP=id,...`` leaves single fixes out.
"""

from __future__ import annotations

import sys

from ._startup import TYPE_CHECKING, WaiterfixWarning, activation_enabled, request_activation

if TYPE_CHECKING:
    from typing import Any, Iterable, Optional

    from ._status import FixStatus, Status

__version__ = "0.1.0"
__all__ = [
    "FixStatus",
    "Status",
    "WaiterfixWarning",
    "__version__",
    "activate",
    "apply",
    "revert",
    "start_watchdog",
    "status",
    "stop_watchdog",
]


def apply(skip: Optional[Iterable[str]] = None) -> Status:
    """Apply every fix this aiohttp needs now (imports aiohttp); idempotent and thread-safe.

    ``skip`` names fixes to leave out; by default ``AIOHTTP_WAITERFIX_SKIP`` does.
    """
    from ._patcher import apply as _apply
    from ._patcher import current

    _apply("apply()", skip)
    return current()


def revert() -> Status:
    """Put back aiohttp's original code (the very same objects); idempotent and thread-safe."""
    from ._patcher import current
    from ._patcher import revert as _revert

    _revert()
    return current()


def status() -> Status:
    """What was done in this process, and why."""
    from ._patcher import current

    return current()


def start_watchdog(mode: str = "report", *, threshold: float = 1.0) -> None:
    """Start the pool watchdog (``"report"`` or ``"heal"``); idempotent, never raises.

    It watches every aiohttp connector for requests that wait while slots are
    free, and for idle pooled connections left paused, for longer than
    ``threshold`` seconds, and logs one WARNING per episode; ``"heal"`` also
    wakes those requests and closes those connections.  ``status().watchdog``
    has the counts.  ``AIOHTTP_WAITERFIX_WATCHDOG=1`` or ``=heal`` starts it
    at activation instead.  It imports aiohttp if it is not imported yet.
    """
    from ._watchdog import start

    start(mode, threshold=threshold)


def stop_watchdog() -> None:
    """Stop the pool watchdog and put aiohttp back as it was; idempotent, never raises."""
    from ._watchdog import stop

    stop()


def activate(activated_by: str = "import") -> None:
    """Turn the fixes on for this process, as ``import aiohttp_waiterfix`` does; never raises.

    Applies them at once if ``aiohttp.connector`` is already imported, else the moment
    it is; it never imports aiohttp itself.  Unlike ``apply()``, it honours the
    kill switch (``AIOHTTP_WAITERFIX=0``: nothing happens).  Importing the
    package calls it; the ``sitecustomize`` block that ``enable`` writes and the
    run wrapper call it again with their own label (``"sitecustomize"``,
    ``"run-wrapper"``), which ``status().activated_by`` then reports.  Calling
    it again is harmless: before aiohttp is imported it only changes the label,
    and once the patch is applied it changes nothing.  Problems are reported
    (a ``WaiterfixWarning``; a refusal also in ``status().reason``), never raised.
    """
    try:
        if activation_enabled():
            request_activation(activated_by, _apply_on_import)
    except Exception as exc:  # pragma: no cover - defensive: start-up must never fail
        _report_failure(exc)


def _apply_on_import(module: Any, activated_by: str) -> None:
    # Runs inside the import of aiohttp.connector: an exception here would make
    # the application's own `import aiohttp` fail, so report instead of raising.
    try:
        from ._patcher import apply_to_module

        apply_to_module(sys.modules["aiohttp"], activated_by)
    except Exception as exc:
        _report_failure(exc)
    try:
        _start_watchdog_if_asked()
    except Exception as exc:
        _report_failure(exc)


def _start_watchdog_if_asked() -> None:
    """AIOHTTP_WAITERFIX_WATCHDOG asks for the watchdog: start it now that aiohttp is imported."""
    import os

    from ._startup import WATCHDOG_ENV_VAR, invalid_watchdog_value, warn, watchdog_mode

    value = os.environ.get(WATCHDOG_ENV_VAR, "")
    problem = invalid_watchdog_value(value)
    if problem is not None:
        warn(f"aiohttp-waiterfix: {problem}")
    mode = watchdog_mode(value)
    if mode is not None:
        start_watchdog(mode)


def _report_failure(exc: BaseException) -> None:
    from ._startup import warn

    warn(f"aiohttp-waiterfix not applied: internal error {exc!r}")


def __getattr__(name: str) -> Any:
    # Status lives in _status, which imports dataclasses: load it on use.
    if name in ("Status", "FixStatus"):
        from . import _status

        return getattr(_status, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


activate()
