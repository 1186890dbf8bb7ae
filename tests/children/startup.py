"""Child of tests/test_startup.py: one start-up case in a fresh interpreter.

    python startup.py CASE [ARG...]

Prints one JSON object: what the case found, and ``status``, the shim's
``status()`` at the end.  Only ``json`` and ``sys`` are imported
before the case runs (not even ``typing``): the cases measure what importing
the shim loads.  Cases:

* ``steps STEP...``: in order, ``shim`` (import aiohttp_waiterfix), ``aiohttp``,
  ``connector`` (import aiohttp.connector), ``apply``;
* ``not-installed DIR``: DIR first on sys.path (no aiohttp there), then the
  application's failed import and two ``apply()`` calls;
* ``import-alone``: the modules that importing the shim loads;
* ``app-import [retry]``: the application's ``import aiohttp`` fails: what it sees;
  ``retry`` imports it again afterwards;
* ``edit-connector replaced|wrapped|added``: someone else changed BaseConnector, then ``apply()`` twice;
* ``apply-revert``, ``threads``, ``hook-race``: apply/revert in one thread, from
  many threads, and while the main thread imports aiohttp.
"""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Tuple

    Result = Dict[str, Any]


def steps(*names: str) -> Result:
    done: List[str] = []
    for name in names:
        if name == "shim":
            import aiohttp_waiterfix
        elif name == "aiohttp":
            import aiohttp
        elif name == "connector":
            import aiohttp.connector  # noqa: F401  (the step is the import)
        elif name == "apply":
            import aiohttp_waiterfix

            aiohttp_waiterfix.apply()
        else:
            raise SystemExit(f"unknown step {name!r}")
        done.append(name)
    module = sys.modules.get("aiohttp")
    version = getattr(module, "__version__", None)
    return {"done": done, "aiohttp_imported": module is not None, "aiohttp_version": version}


def not_installed(directory: str) -> Result:
    sys.path.insert(0, directory)
    import aiohttp_waiterfix

    app = None
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        app = type(exc).__name__
    first = aiohttp_waiterfix.apply()
    second = aiohttp_waiterfix.apply()
    return {"app_error": app, "same": first == second, "applied": first.applied, "reason": first.reason}


def import_alone() -> Result:
    before = set(sys.modules)
    import aiohttp_waiterfix  # noqa: F401

    new = set(sys.modules) - before
    heavy = sorted(m for m in new if m.split(".")[0] in ("aiohttp", "wrapt", "packaging", "asyncio"))
    return {"heavy": heavy, "typing": "typing" in new}


def app_import(*options: str) -> Result:
    import aiohttp_waiterfix  # noqa: F401

    found: Result = {}
    try:
        import aiohttp
    except BaseException as exc:
        files = []
        tb = exc.__traceback__
        while tb is not None:
            files.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        found = {
            "error": type(exc).__name__,
            "message": str(exc),
            "chain": [repr(exc.__cause__), repr(exc.__context__)],
            "last_frame": files[-1].replace("\\", "/").split("/")[-2:],
        }
    if "retry" in options:
        import aiohttp  # noqa: F401
    return found


def edit_connector(change: str) -> Result:
    from aiohttp.connector import BaseConnector

    import aiohttp_waiterfix

    cls: Any = BaseConnector  # assigned to below, as someone else's patch would
    if change == "replaced":
        orig = cls._release_waiter

        def other(self: Any) -> Any:
            return orig(self)

        cls._release_waiter = other
    elif change == "wrapped":
        import functools

        closer = cls._close

        @functools.wraps(closer)  # its __wrapped__ is aiohttp's _close: still not aiohttp's code
        def wrapper(self: Any) -> Any:
            return closer(self)

        cls._close = wrapper
    elif change == "added":
        cls._wait_for_available_connection = lambda self, key, traces: None
    else:
        raise SystemExit(f"unknown change {change!r}")
    first = aiohttp_waiterfix.apply()
    second = aiohttp_waiterfix.apply()
    return {"same": first == second}


def _classes() -> Dict[Tuple[str, str], Dict[str, Any]]:
    """``vars()`` of every class a fix changes (read from the registry), as it is now."""
    import importlib

    from aiohttp_waiterfix._registry import owners

    return {(m, o): dict(vars(getattr(importlib.import_module(m), o))) for m, o in owners()}


def _changes() -> List[Any]:
    """The changes of every fix this release needs (their variant for it), read from the registry.

    Each change carries ``ours``: what the fix's module installs (the wrapper, for WRAP).
    """
    import importlib

    import aiohttp

    from aiohttp_waiterfix import _patcher
    from aiohttp_waiterfix._registry import FIXES
    from aiohttp_waiterfix._status import assess

    out: List[Any] = []
    for fix in FIXES:
        if assess(fix, aiohttp.__version__).affected:
            variant = _patcher.variant_for(fix, aiohttp.__version__)
            for change in variant.changes if variant else ():
                code = importlib.import_module(f"aiohttp_waiterfix.fixes.{fix.module}")
                out.append((change, getattr(code, change.using, None)))
    return out


def _same_objects(a: Dict[Tuple[str, str], Dict[str, Any]], b: Dict[Tuple[str, str], Dict[str, Any]]) -> bool:
    return a.keys() == b.keys() and all(
        a[owner].keys() == b[owner].keys() and all(a[owner][k] is b[owner][k] for k in a[owner]) for owner in a
    )


def _getter(value: Any) -> Any:
    """What a WRAP change wraps: a method, or a property's getter."""
    return value.fget if isinstance(value, property) else value


def _one_layer(now: Dict[Tuple[str, str], Dict[str, Any]], originals: Dict[Tuple[str, str], Dict[str, Any]]) -> bool:
    """Each of our wrappers wraps aiohttp's own code, not a wrapper of ours; each replacement is our own object."""

    def one(change: Any, ours: Any) -> bool:
        installed, original = now[(change.module, change.owner)][change.name], originals[(change.module, change.owner)]
        if change.kind == "wrap":
            return getattr(_getter(installed), "__wrapped__", None) is _getter(original[change.name])
        return bool(installed is ours)

    changes = _changes()
    return bool(changes) and all(one(change, ours) for change, ours in changes)


def _in_place(now: Dict[Tuple[str, str], Dict[str, Any]], originals: Dict[Tuple[str, str], Dict[str, Any]]) -> str:
    """``all``, ``none`` or ``some`` of the needed changes are in place."""
    changed = [
        now[(c.module, c.owner)].get(c.name) is not originals[(c.module, c.owner)].get(c.name) for c, _ in _changes()
    ]
    return "all" if all(changed) else "none" if not any(changed) else "some"


def apply_revert() -> Result:
    import aiohttp_waiterfix

    originals = _classes()
    a = aiohttp_waiterfix.apply()
    patched = _classes()
    r = aiohttp_waiterfix.revert()
    restored = _classes()
    b = aiohttp_waiterfix.apply()
    again = _classes()
    wrapped = {(c.module, c.owner, c.name) for c, _ in _changes() if c.kind == "wrap"}
    return {
        "flags": [a.applied, r.applied, b.applied],
        "restored": _same_objects(restored, originals),
        # wrapt makes new wrappers on every apply(); everything else is the same object
        "same_patch": _same_objects(
            {o: {k: v for k, v in d.items() if (*o, k) not in wrapped} for o, d in patched.items()},
            {o: {k: v for k, v in d.items() if (*o, k) not in wrapped} for o, d in again.items()},
        ),
        "one_layer": _one_layer(again, originals),
    }


def threads() -> Result:
    import random
    import threading

    import aiohttp_waiterfix

    sys.setswitchinterval(1e-6)
    originals = _classes()
    errors: List[str] = []
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        rnd = random.Random(n)
        try:
            start.wait()
            for _ in range(200):
                (aiohttp_waiterfix.apply if rnd.random() < 0.5 else aiohttp_waiterfix.revert)()
        except BaseException as exc:
            errors.append(repr(exc))

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    consistent = _in_place(_classes(), originals) == ("all" if aiohttp_waiterfix.status().applied else "none")
    aiohttp_waiterfix.apply()
    now = _classes()
    one_layer = _one_layer(now, originals) and _in_place(now, originals) == "all"
    aiohttp_waiterfix.revert()
    return {
        "errors": errors,
        "consistent": consistent,
        "one_layer": one_layer,
        "restored": _same_objects(_classes(), originals),
    }


def hook_race() -> Result:
    """Threads call apply() while the main thread imports aiohttp for the first time."""
    import threading

    import aiohttp_waiterfix

    results: List[bool] = []
    start = threading.Barrier(5)

    def worker() -> None:
        start.wait()
        results.append(aiohttp_waiterfix.apply().applied)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for t in workers:
        t.start()
    start.wait()
    import aiohttp  # noqa: F401

    for t in workers:
        t.join()
    now = _classes()
    wraps = [_getter(now[(c.module, c.owner)][c.name]) for c, _ in _changes() if c.kind == "wrap"]
    return {"results": results, "one_layer": all(not hasattr(w.__wrapped__, "__wrapped__") for w in wraps)}


CASES: Dict[str, Callable[..., Result]] = {
    "steps": steps,
    "not-installed": not_installed,
    "import-alone": import_alone,
    "app-import": app_import,
    "edit-connector": edit_connector,
    "apply-revert": apply_revert,
    "threads": threads,
    "hook-race": hook_race,
}


def main() -> None:
    case, *args = sys.argv[1:]
    found = CASES[case](*args)
    import dataclasses

    import aiohttp_waiterfix

    found["status"] = dataclasses.asdict(aiohttp_waiterfix.status())
    print(json.dumps(found))


if __name__ == "__main__":
    main()
