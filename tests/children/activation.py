"""Child of tests/test_activation.py, run by the interpreter of its virtual environment.

    python activation.py CASE [ARG...]

That environment has aiohttp and the installed wheel, no pytest and nothing of
tests/: this file imports neither.  Before the case runs only ``json``, ``os``
and ``sys`` are imported (not even ``typing``), so that ``loaded`` sees what the
process itself loaded.  Each case prints one JSON object.  Cases:

* ``probe``: what a program that imports aiohttp gets (activation, fixes,
  the watchdog, which sitecustomize ran);
* ``loaded [shim]``: the modules a process that never imports aiohttp has
  loaded (``shim``: after importing aiohttp_waiterfix), then the activation
  that is waiting for aiohttp (``pending_label``);
* ``block-path``: where ``enable``'s block is installed, as the package finds it;
* ``purelib``: this interpreter's site-packages;
* ``spawn CASE [ARG...]``: runs CASE in a new interpreter (``sys.executable``),
  exits with its exit status;
* ``exit N``: exits with status N, printing nothing.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict

    Result = Dict[str, Any]


def probe() -> Result:
    import aiohttp.connector  # noqa: F401  (what the application does)

    import aiohttp_waiterfix
    from aiohttp_waiterfix import _patcher

    status = aiohttp_waiterfix.status()
    sitecustomize = sys.modules.get("sitecustomize")
    return {
        "applied": status.applied,
        "activated_by": status.activated_by,
        "reason": status.reason,
        "applied_fixes": list(_patcher.applied_fixes()),
        "watchdog": None if status.watchdog is None else status.watchdog.mode,
        "sitecustomize": getattr(sitecustomize, "__file__", None),
        "user_sitecustomize": os.environ.get("USER_SITECUSTOMIZE_RAN"),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }


def loaded(*options: str) -> Result:
    if "shim" in options:
        import aiohttp_waiterfix  # noqa: F401
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "wrapt", "packaging", "typing"))
    from aiohttp_waiterfix import _startup

    return {"loaded": heavy, "pending_label": _startup.pending_label}


def block_path() -> Result:
    from aiohttp_waiterfix._enable import installed_block_path

    return {"path": installed_block_path()}


def purelib() -> Result:
    import sysconfig

    return {"purelib": sysconfig.get_paths()["purelib"]}


def spawn(*args: str) -> Result:
    import subprocess

    sys.exit(subprocess.call([sys.executable, __file__, *args]))


def exit_with(code: str) -> Result:
    sys.exit(int(code))


CASES: Dict[str, Callable[..., Result]] = {
    "probe": probe,
    "loaded": loaded,
    "block-path": block_path,
    "purelib": purelib,
    "spawn": spawn,
    "exit": exit_with,
}


def main() -> None:
    case, *args = sys.argv[1:]
    print(json.dumps(CASES[case](*args)))


if __name__ == "__main__":
    main()
