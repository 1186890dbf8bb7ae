"""Start-up activation: the kill switch and a lazy post-import hook.

Everything here runs when ``aiohttp_waiterfix`` is imported, possibly from
``sitecustomize`` in every Python process, so it imports nothing heavy: no
aiohttp, no wrapt, no packaging.  The real work starts only when
``aiohttp.connector`` finishes importing.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~20 ms cold
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence

ENV_VAR = "AIOHTTP_WAITERFIX"
"""``0``/``false``/``off``/``no`` turns automatic activation off."""
SKIP_ENV_VAR = "AIOHTTP_WAITERFIX_SKIP"
"""``id[,id...]``: fixes to leave out (read when the fixes are applied)."""
WATCHDOG_ENV_VAR = "AIOHTTP_WAITERFIX_WATCHDOG"
"""``1``/``report``: the pool watchdog reports stuck connectors; ``heal``: it also unsticks them."""

TARGET_MODULE = "aiohttp.connector"

_OFF = frozenset({"0", "false", "off", "no"})
_ON = frozenset({"", "1", "true", "on", "yes"})
_WATCHDOG_MODES = {**dict.fromkeys(("1", "true", "on", "yes", "report"), "report"), "heal": "heal"}
_WATCHDOG_OFF = frozenset({"", "0", "false", "off", "no", "none"})


class WaiterfixWarning(RuntimeWarning):
    """Category of every warning aiohttp-waiterfix emits (filter it by this)."""


disabled_reason: Optional[str] = None
"""Set when the kill switch turned start-up activation off."""


def activation_enabled() -> bool:
    """Read the kill switch; an unrecognised value warns and keeps the default (on)."""
    global disabled_reason
    value = os.environ.get(ENV_VAR, "").strip().lower()
    disabled_reason = kill_switch_reason()
    if disabled_reason is not None:
        return False
    if value not in _ON:
        warn(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not one of 1/true/on/yes or "
            "0/false/off/no; keeping the default (activated)"
        )
    return True


def switched_off(environ: Any = None) -> bool:
    """True when the kill switch is set to an off value (the one parser of it)."""
    return (environ if environ is not None else os.environ).get(ENV_VAR, "").strip().lower() in _OFF


def kill_switch_reason(environ: Any = None) -> Optional[str]:
    """Why nothing is applied when the kill switch is off, in the words ``status`` reports; None when on."""
    environ = environ if environ is not None else os.environ
    return f"disabled by {ENV_VAR}={environ[ENV_VAR]}" if switched_off(environ) else None


def requested_skips() -> Sequence[str]:
    """The fix ids named in AIOHTTP_WAITERFIX_SKIP (spaces and empty items ignored)."""
    return tuple(item.strip().lower() for item in os.environ.get(SKIP_ENV_VAR, "").split(",") if item.strip())


def watchdog_mode(value: str) -> Optional[str]:
    """The watchdog mode an ``AIOHTTP_WAITERFIX_WATCHDOG`` value asks for: ``"report"``, ``"heal"`` or None (off).

    Off: empty, ``0``, ``false``, ``off``, ``no``, ``none``; report: ``1``,
    ``true``, ``on``, ``yes``, ``report``; heal: ``heal``; case and spaces do
    not matter.  Anything else is off too, and ``invalid_watchdog_value`` says why.
    """
    return _WATCHDOG_MODES.get(value.strip().lower())


def invalid_watchdog_value(value: str) -> Optional[str]:
    """None when ``value`` is a valid watchdog setting (on or off), else the sentence to warn with."""
    word = value.strip().lower()
    if word in _WATCHDOG_OFF or word in _WATCHDOG_MODES:
        return None
    return (
        f"{WATCHDOG_ENV_VAR}={value!r} is not one of 1/on/true/yes/report, heal or 0/off/false/no; "
        "the watchdog stays off"
    )


def warn(message: str) -> None:
    """Emit a WaiterfixWarning that can never raise (even under ``-W error``)."""
    import warnings

    try:
        warnings.warn(message, WaiterfixWarning, stacklevel=3)
    except Exception:
        pass


def _call_after_exec(loader: Any, callback: Callable[[Any], None], on_error: Callable[[], None]) -> None:
    """Make ``loader.exec_module`` run ``callback(module)`` after it, once.

    The hook is set on this loader *instance* and removes itself on entry, so
    the module keeps aiohttp's own loader (``__loader__``), which other
    import-time tools (e.g. ddtrace's module watchdog) rely on.
    """
    run_original = loader.exec_module

    def exec_module(module: Any) -> None:
        del loader.exec_module
        try:
            run_original(module)
        except BaseException:
            on_error()  # the module's own error propagates untouched; hook again next time
            raise
        callback(module)

    loader.exec_module = exec_module


class PostImportFinder:
    """A ``sys.meta_path`` entry that calls back once ``TARGET_MODULE`` has been imported.

    Like wrapt's post-import hooks, without importing wrapt: it finds the
    module with the other finders and wraps only that spec's loader.  It
    removes itself after it fired.  The callback must not raise.
    """

    def __init__(self, callback: Callable[[Any], None]) -> None:
        self._callback = callback
        # find_spec runs under the import lock of the module it looks for, so
        # a plain flag is enough to keep it from finding itself.
        self._searching = False

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        if fullname != TARGET_MODULE or self._searching:
            return None
        self._searching = True
        try:
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._searching = False
        loader = spec.loader
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec  # not a loader instance we can hook; stay installed
        try:
            _call_after_exec(loader, self._callback, self.install)
        except (AttributeError, TypeError):
            return spec  # a loader that refuses attributes (slots); stay installed
        self.remove()
        return spec

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass

    def invalidate_caches(self) -> None:
        """Part of the finder protocol; nothing cached here."""


pending_label: Optional[str] = None
"""How activation was requested, while it waits for aiohttp.connector."""
_finder: Optional[PostImportFinder] = None


def request_activation(label: str, callback: Callable[[Any, str], None]) -> None:
    """Call ``callback(module, label)`` now if aiohttp.connector is loaded, else once it loads.

    Asking again before it loads only updates the label (``import`` then
    ``sitecustomize``): there is one hook, and it fires once.
    """
    global pending_label, _finder
    module = sys.modules.get(TARGET_MODULE)
    if module is not None:
        callback(module, label)
        return
    pending_label = label
    if _finder is None:

        def fire(module: Any) -> None:
            global pending_label
            fired_label, pending_label = pending_label or label, None
            callback(module, fired_label)

        _finder = PostImportFinder(fire)
    _finder.install()
