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


class _Changes:
    """What the fixes this release needs change, read from the registry (import aiohttp first)."""

    def __init__(self) -> None:
        import importlib

        import aiohttp

        from aiohttp_waiterfix import _patcher
        from aiohttp_waiterfix._registry import FIXES, WRAP
        from aiohttp_waiterfix._status import assess

        self.changes = [
            change
            for fix in FIXES
            if assess(fix, aiohttp.__version__).affected
            for change in _patcher.variant_for(fix, aiohttp.__version__).changes  # type: ignore[union-attr]
        ]
        self.owners = {(c.module, c.owner): getattr(importlib.import_module(c.module), c.owner) for c in self.changes}
        self.wrapped = [(c.module, c.owner, c.name) for c in self.changes if c.kind == WRAP]

    def snapshot(self) -> Dict[Tuple[str, str], Dict[str, Any]]:
        return {key: dict(vars(cls)) for key, cls in self.owners.items()}

    def same(self, a: Dict[Tuple[str, str], Dict[str, Any]], b: Dict[Tuple[str, str], Dict[str, Any]]) -> bool:
        """The very same objects, except the wrappers (wrapt makes new ones on every apply())."""
        return a.keys() == b.keys() and all(
            a[k].keys() == b[k].keys() and all(a[k][n] is b[k][n] for n in a[k] if (*k, n) not in self.wrapped)
            for k in a
        )

    def identical(self, a: Dict[Tuple[str, str], Dict[str, Any]], b: Dict[Tuple[str, str], Dict[str, Any]]) -> bool:
        return a.keys() == b.keys() and all(
            a[k].keys() == b[k].keys() and all(a[k][n] is b[k][n] for n in a[k]) for k in a
        )

    def one_layer(
        self, now: Dict[Tuple[str, str], Dict[str, Any]], originals: Dict[Tuple[str, str], Dict[str, Any]]
    ) -> bool:
        """Our wrappers wrap aiohttp's own code, not a wrapper of ours."""
        return all(now[(m, o)][n].__wrapped__ is originals[(m, o)][n] for m, o, n in self.wrapped)

    def all_in_place(self, originals: Dict[Tuple[str, str], Dict[str, Any]]) -> bool:
        return all(
            vars(self.owners[(c.module, c.owner)]).get(c.name) is not originals[(c.module, c.owner)].get(c.name)
            for c in self.changes
        )


def apply_revert() -> Result:
    import aiohttp_waiterfix

    changes = _Changes()
    originals = changes.snapshot()
    a = aiohttp_waiterfix.apply()
    patched = changes.snapshot()
    r = aiohttp_waiterfix.revert()
    restored = changes.snapshot()
    b = aiohttp_waiterfix.apply()
    again = changes.snapshot()
    return {
        "flags": [a.applied, r.applied, b.applied],
        "restored": changes.identical(restored, originals),
        "same_patch": changes.same(patched, again),
        "one_layer": bool(changes.changes) and changes.one_layer(again, originals),
    }


def threads() -> Result:
    import random
    import threading

    import aiohttp_waiterfix

    changes = _Changes()
    sys.setswitchinterval(1e-6)
    originals = changes.snapshot()
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
    consistent = aiohttp_waiterfix.status().applied == changes.all_in_place(originals)
    aiohttp_waiterfix.apply()
    one_layer = changes.one_layer(changes.snapshot(), originals) and changes.all_in_place(originals)
    aiohttp_waiterfix.revert()
    return {
        "errors": errors,
        "consistent": consistent,
        "one_layer": one_layer,
        "restored": changes.identical(changes.snapshot(), originals),
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
    changes = _Changes()
    now = changes.snapshot()
    one_layer = bool(changes.changes) and all(
        not hasattr(now[(m, o)][n].__wrapped__, "__wrapped__") for m, o, n in changes.wrapped
    )
    return {"results": results, "one_layer": one_layer}


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
