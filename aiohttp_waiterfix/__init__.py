"""Run-time backports of aiohttp connection-pool fixes for pinned aiohttp releases.

Today: aiohttp 3.10.11's cancellation-safe connection waiters (aiohttp#9671).
On aiohttp 3.8.0-3.10.10 a ``TCPConnector(limit=N)`` whose queued requests get
cancelled can lose slots and wake-ups and then hang every new request
(aiohttp#9670).  Importing this package patches the connector as soon as
``aiohttp.connector`` is imported; on any other release it changes nothing and
``status()`` says why.  Set ``AIOHTTP_WAITERFIX=0`` to turn activation off.
"""

from __future__ import annotations

from ._startup import TYPE_CHECKING, WaiterfixWarning, activation_enabled, request_activation

if TYPE_CHECKING:
    from typing import Any

    from ._patcher import Status

__version__ = "0.1.0"
__all__ = ["Status", "WaiterfixWarning", "__version__", "activate", "apply", "revert", "status"]


def apply() -> Status:
    """Apply the patch now (imports aiohttp); idempotent and thread-safe."""
    from ._patcher import apply as _apply

    return _apply("apply()")


def revert() -> Status:
    """Restore aiohttp's original connector methods; idempotent and thread-safe."""
    from ._patcher import revert as _revert

    return _revert()


def status() -> Status:
    """What was done in this process, and why."""
    from ._patcher import current

    return current()


def activate(activated_by: str = "import") -> None:
    """Turn the fix on for this process, as ``import aiohttp_waiterfix`` does; never raises.

    Patches at once if ``aiohttp.connector`` is already imported, else the moment
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

        apply_to_module(module, activated_by)
    except Exception as exc:
        _report_failure(exc)


def _report_failure(exc: BaseException) -> None:
    from ._startup import warn

    warn(f"aiohttp-waiterfix not applied: internal error {exc!r}")


def __getattr__(name: str) -> Any:
    # Status lives with the patcher, which imports dataclasses: load it on use.
    if name == "Status":
        from ._patcher import Status

        return Status
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


activate()
