"""Start-up robustness: every case runs in a fresh interpreter.

The shim is imported by applications (and by sitecustomize) in every kind of
environment; whatever the environment, importing it must not raise, must not
change the application's own import errors, and must end with a ``status()``
that says what happened and why, plus exactly one ``WaiterfixWarning`` where
one is due.  Fake ``aiohttp`` packages are put first on ``PYTHONPATH``.

Each child prints its final ``status()`` as JSON on the line after ``STATUS``;
warnings are counted on stderr (the child runs with ``-W always``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

import aiohttp_waiterfix

import aiohttp  # isort: skip

from aiohttp_waiterfix._registry import FIXES, WAITERS
from aiohttp_waiterfix._status import assess, expected_status

NEEDS_FIXES = bool(expected_status(aiohttp.__version__).affected)
FIXED_FOR_ALL = max((fix.fixed_in for fix in FIXES), key=lambda v: tuple(map(int, v.split("."))))
"""The first release with upstream's fix for every fix we carry."""
needs_affected = pytest.mark.skipif(not NEEDS_FIXES, reason=f"aiohttp {aiohttp.__version__} needs none of our fixes")
needs_waiters = pytest.mark.skipif(
    not assess(WAITERS, aiohttp.__version__).affected, reason=f"aiohttp {aiohttp.__version__} has upstream's waiter fix"
)

PRINT_STATUS = """
import dataclasses as _dc, json as _json
import aiohttp_waiterfix as _w
print("STATUS")
print(_json.dumps(_dc.asdict(_w.status())))
"""


@dataclass
class Child:
    returncode: int
    stdout: str
    stderr: str

    @property
    def status(self) -> Dict[str, Any]:
        lines = self.stdout.splitlines()
        assert "STATUS" in lines, f"child printed no status:\n{self.stdout}\n{self.stderr}"
        return dict(json.loads(lines[lines.index("STATUS") + 1]))

    @property
    def warnings(self) -> List[str]:
        return [line for line in self.stderr.splitlines() if "WaiterfixWarning:" in line]

    def out(self, marker: str) -> str:
        for line in self.stdout.splitlines():
            if line.startswith(marker + " "):
                return line[len(marker) + 1 :]
        raise AssertionError(f"no {marker!r} line in:\n{self.stdout}\n{self.stderr}")


def run_child(
    code: str,
    *,
    pythonpath: Sequence[Path] = (),
    env: Optional[Dict[str, str]] = None,
    args: Sequence[str] = ("-W", "always"),
    status: bool = True,
) -> Child:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIOHTTP_WAITERFIX", "PYTHONWARNINGS")}
    if pythonpath:
        environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    environ.update(env or {})
    source = textwrap.dedent(code) + (PRINT_STATUS if status else "")
    proc = subprocess.run(
        [sys.executable, *args, "-c", source],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    child = Child(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return child


def fake_aiohttp(root: Path, version: Optional[str], connector: str) -> Path:
    """A fake ``aiohttp`` package in ``root``: ``__version__`` then ``aiohttp.connector``'s source."""
    package = root / "aiohttp"
    package.mkdir(parents=True)
    version_line = f"__version__ = {version!r}\n" if version is not None else ""
    # Like the real one: __version__ first, then the imports that load the connector.
    (package / "__init__.py").write_text(version_line + "from . import connector  # noqa\n")
    (package / "connector.py").write_text(textwrap.dedent(connector))
    return root


PLAIN_CONNECTOR = """
class BaseConnector:
    def connect(self, req, traces, timeout):
        return None
"""


# ------------------------------------------------------------- import paths


@needs_affected
@pytest.mark.parametrize("order", ["shim-first", "aiohttp-first", "connector-only"])
def test_import_order(order: str) -> None:
    code = {
        "shim-first": "import aiohttp_waiterfix\nimport aiohttp\n",
        "aiohttp-first": "import aiohttp\nimport aiohttp_waiterfix\n",
        "connector-only": "import aiohttp_waiterfix\nimport aiohttp.connector\n",
    }[order]
    child = run_child(code)
    assert child.status["applied"] is True
    assert child.status["activated_by"] == "import"
    assert child.status["aiohttp_version"] == aiohttp.__version__
    assert child.warnings == []


def test_import_alone_imports_neither_aiohttp_nor_wrapt() -> None:
    child = run_child(
        """
        import sys
        before = set(sys.modules)
        import aiohttp_waiterfix
        new = set(sys.modules) - before
        print("HEAVY", sorted(m for m in new if m.split(".")[0] in ("aiohttp", "wrapt", "packaging", "asyncio")))
        print("TYPING", "typing" in new)
        """,
        status=False,
    )
    assert child.out("HEAVY") == "[]"
    assert child.out("TYPING") == "False"


def test_status_before_aiohttp_is_imported_says_waiting() -> None:
    child = run_child(
        """
        import sys
        import aiohttp_waiterfix
        assert "aiohttp" not in sys.modules
        """
    )
    status = child.status
    assert status["applied"] is False
    assert "waiting" in status["reason"]
    assert status["activated_by"] == "import"
    assert child.warnings == []


def test_aiohttp_not_installed(tmp_path: Path) -> None:
    """No aiohttp anywhere on sys.path (no site-packages at all): import is silent, apply() says why."""
    import packaging
    import wrapt

    isolated = tmp_path / "isolated"
    isolated.mkdir()
    for module in (aiohttp_waiterfix, wrapt, packaging):
        (isolated / module.__name__).symlink_to(Path(module.__file__).parent)  # type: ignore[arg-type]
    child = run_child(
        f"""
        import sys
        sys.path.insert(0, {str(isolated)!r})
        import aiohttp_waiterfix
        try:
            import aiohttp
        except ImportError as exc:
            print("APP", type(exc).__name__)
        first = aiohttp_waiterfix.apply()
        second = aiohttp_waiterfix.apply()
        print("SAME", first == second)
        print("APPLY", first.applied, first.reason)
        """,
        args=("-S", "-E", "-W", "always"),
    )
    assert child.out("APP") == "ModuleNotFoundError"
    assert child.out("SAME") == "True"
    assert child.out("APPLY").startswith("False aiohttp cannot be imported")
    status = child.status  # status() must tell what apply() found, not "waiting"
    assert status["applied"] is False
    assert status["affected"] is None
    assert status["aiohttp_version"] is None
    assert "cannot be imported" in status["reason"]
    assert len(child.warnings) == 1, child.stderr


@pytest.mark.parametrize("error", ["ImportError", "RuntimeError"])
def test_aiohttp_import_error_propagates_unchanged(tmp_path: Path, error: str) -> None:
    root = fake_aiohttp(
        tmp_path,
        "3.10.10",
        f"raise {error}('the application sees this: from aiohttp.connector')\n",
    )
    child = run_child(
        """
        import aiohttp_waiterfix
        try:
            import aiohttp
        except BaseException as exc:
            print("APP", type(exc).__name__, str(exc))
            print("CHAIN", repr(exc.__cause__), repr(exc.__context__))
            tb = exc.__traceback__
            files = []
            while tb is not None:
                files.append(tb.tb_frame.f_code.co_filename)
                tb = tb.tb_next
            print("LAST", files[-1].replace("\\\\", "/").split("/")[-2:])
        """,
        pythonpath=[root],
    )
    assert child.out("APP") == f"{error} the application sees this: from aiohttp.connector"
    assert child.out("CHAIN") == "None None"
    assert child.out("LAST") == "['aiohttp', 'connector.py']"
    status = child.status
    assert status["applied"] is False
    assert child.warnings == []


def test_hook_survives_a_failed_first_import(tmp_path: Path) -> None:
    """aiohttp.connector fails once (say a missing optional dependency), then imports:
    the second import must still be seen (here: refused, the fake's code is unknown)."""
    root = fake_aiohttp(
        tmp_path,
        "3.10.10",
        """
        import os
        if os.environ.pop("FAIL_ONCE", None):
            raise ImportError("first import fails")
        class BaseConnector:
            pass
        """,
    )
    child = run_child(
        """
        import aiohttp_waiterfix
        try:
            import aiohttp
        except ImportError as exc:
            print("FIRST", exc)
        import aiohttp
        """,
        pythonpath=[root],
        env={"FAIL_ONCE": "1"},
    )
    assert child.out("FIRST") == "first import fails"
    status = child.status
    assert "refused" in status["reason"], f"the post-import hook was lost after the failed import: {status}"
    assert status["applied"] is False


@pytest.mark.parametrize(
    "version, affected, words, warned",
    [
        ("3.10.5+vendor", None, "local build", 1),
        ("4.0.0", False, "fixed upstream", 0),
        (FIXED_FOR_ALL, False, "fixed upstream", 0),
        ("3.10.10rc1", None, "not a final release", 1),
        ("3.7.4", None, "older than", 1),
        ("not-a-version", None, "not a valid version", 1),
        (None, None, "no __version__", 1),
    ],
)
def test_unknown_or_fixed_version(
    tmp_path: Path, version: Optional[str], affected: Any, words: str, warned: int
) -> None:
    root = fake_aiohttp(tmp_path, version, PLAIN_CONNECTOR)
    child = run_child("import aiohttp_waiterfix\nimport aiohttp\naiohttp_waiterfix.apply()\n", pythonpath=[root])
    status = child.status
    assert status["applied"] is False
    assert status["affected"] is affected
    assert words in status["reason"]
    assert status["aiohttp_version"] == version
    assert len(child.warnings) == warned, child.stderr


def test_affected_version_with_foreign_code_is_refused(tmp_path: Path) -> None:
    root = fake_aiohttp(tmp_path, "3.10.10", PLAIN_CONNECTOR)
    child = run_child("import aiohttp_waiterfix\nimport aiohttp\n", pythonpath=[root])
    status = child.status
    assert status["applied"] is False
    assert status["affected"] is True
    assert "refused" in status["reason"]
    assert len(child.warnings) == 1, child.stderr


@needs_waiters
@pytest.mark.parametrize("change", ["replaced", "wrapped", "added"])
def test_changed_connector_is_refused(change: str) -> None:
    edit = {
        "replaced": "orig = C._release_waiter\ndef other(self):\n    return orig(self)\nC._release_waiter = other\n",
        "wrapped": "import functools\norig = C._close\nC._close = functools.wraps(orig)(lambda self: orig(self))\n",
        "added": "C._wait_for_available_connection = lambda self, key, traces: None\n",
    }[change]
    name = {"replaced": "_release_waiter", "wrapped": "_close", "added": "_wait_for_available_connection"}[change]
    child = run_child(
        "import aiohttp_waiterfix\nfrom aiohttp.connector import BaseConnector as C\n"
        + edit
        + "s1 = aiohttp_waiterfix.apply()\ns2 = aiohttp_waiterfix.apply()\nprint('SAME', s1 == s2)\n",
        env={"AIOHTTP_WAITERFIX": "0"},
    )
    status = child.status
    assert status["applied"] is False
    assert status["affected"] is True
    assert status["activated_by"] == "apply()"
    assert "refused" in status["reason"] and name in status["reason"]
    assert child.out("SAME") == "True"
    assert len(child.warnings) == 1, child.stderr


# ----------------------------------------------------------- the kill switch


@pytest.mark.parametrize("value", ["0", "false", " OFF ", "No"])
def test_kill_switch(value: str) -> None:
    child = run_child("import aiohttp_waiterfix\nimport aiohttp\n", env={"AIOHTTP_WAITERFIX": value})
    status = child.status
    assert status["applied"] is False
    assert "AIOHTTP_WAITERFIX" in status["reason"]
    assert child.warnings == []


@pytest.mark.parametrize("value", ["maybe", "2", "enable", "0 1"])
def test_garbage_in_the_kill_switch_warns_once_and_keeps_the_default(value: str) -> None:
    child = run_child("import aiohttp_waiterfix\nimport aiohttp\n", env={"AIOHTTP_WAITERFIX": value})
    assert len(child.warnings) == 1, child.stderr
    assert repr(value) in child.warnings[0] or value in child.warnings[0]
    if NEEDS_FIXES:
        assert child.status["applied"] is True


@needs_affected
@pytest.mark.parametrize("value", ["", "1", "true", "on", "YES"])
def test_kill_switch_on_values(value: str) -> None:
    child = run_child("import aiohttp_waiterfix\nimport aiohttp\n", env={"AIOHTTP_WAITERFIX": value})
    assert child.status["applied"] is True
    assert child.warnings == []


# --------------------------------------------------------- warnings as errors


def test_warnings_as_errors_never_break_the_application_import(tmp_path: Path) -> None:
    """Under ``-W error`` a due warning must not turn into the application's ImportError."""
    root = fake_aiohttp(tmp_path, "3.10.5+vendor", PLAIN_CONNECTOR)
    child = run_child(
        """
        import aiohttp_waiterfix
        import aiohttp
        print("IMPORTED", aiohttp.__version__)
        """,
        pythonpath=[root],
        args=("-W", "error::RuntimeWarning"),
    )
    assert child.out("IMPORTED") == "3.10.5+vendor"
    assert child.status["applied"] is False


def test_warnings_as_errors_never_break_importing_the_shim() -> None:
    child = run_child(
        "import aiohttp_waiterfix\nprint('IMPORTED yes')\n",
        env={"AIOHTTP_WAITERFIX": "maybe"},
        args=("-W", "error::RuntimeWarning"),
    )
    assert child.out("IMPORTED") == "yes"


# ------------------------------------------------------------- apply/revert


@needs_waiters  # checks the waiters fix's wrapped BaseConnector methods
def test_apply_revert_apply_in_a_fresh_process() -> None:
    child = run_child(
        """
        import aiohttp_waiterfix
        from aiohttp.connector import BaseConnector as C
        originals = dict(vars(C))
        a = aiohttp_waiterfix.apply()
        patched = dict(vars(C))
        r = aiohttp_waiterfix.revert()
        restored = dict(vars(C))
        b = aiohttp_waiterfix.apply()
        again = dict(vars(C))
        print("FLAGS", a.applied, r.applied, b.applied)
        print("RESTORED", restored.keys() == originals.keys() and all(restored[k] is originals[k] for k in originals))
        print("SAME_PATCH", patched.keys() == again.keys()
              and all(patched[k] is again[k] for k in patched if k not in ("__init__", "_close", "_get")))
        print("ONE_LAYER", again["__init__"].__wrapped__ is originals["__init__"]
              and again["_close"].__wrapped__ is originals["_close"])
        """,
        env={"AIOHTTP_WAITERFIX": "0"},
    )
    assert child.out("FLAGS") == "True False True"
    assert child.out("RESTORED") == "True"
    assert child.out("SAME_PATCH") == "True"
    assert child.out("ONE_LAYER") == "True"
    assert child.status["applied"] is True
    assert child.status["activated_by"] == "apply()"
    assert child.warnings == []


@needs_waiters  # checks the waiters fix's wrapped BaseConnector methods
def test_apply_and_revert_from_many_threads() -> None:
    child = run_child(
        """
        import random, sys, threading
        import aiohttp_waiterfix
        from aiohttp.connector import BaseConnector as C
        sys.setswitchinterval(1e-6)
        originals = dict(vars(C))
        errors = []
        start = threading.Barrier(16)

        def worker(n):
            rnd = random.Random(n)
            try:
                start.wait()
                for _ in range(200):
                    (aiohttp_waiterfix.apply if rnd.random() < 0.5 else aiohttp_waiterfix.revert)()
            except BaseException as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        s = aiohttp_waiterfix.status()
        patched = "_wait_for_available_connection" in vars(C)
        print("ERRORS", errors)
        print("CONSISTENT", s.applied == patched)
        aiohttp_waiterfix.apply()
        now = dict(vars(C))
        print("ONE_LAYER", now["__init__"].__wrapped__ is originals["__init__"]
              and now["_close"].__wrapped__ is originals["_close"]
              and now["_get"] is not originals["_get"])
        aiohttp_waiterfix.revert()
        back = dict(vars(C))
        print("RESTORED", back.keys() == originals.keys() and all(back[k] is originals[k] for k in originals))
        """,
        env={"AIOHTTP_WAITERFIX": "0"},
    )
    assert child.out("ERRORS") == "[]"
    assert child.out("CONSISTENT") == "True"
    assert child.out("ONE_LAYER") == "True"
    assert child.out("RESTORED") == "True"
    assert child.warnings == []


@needs_waiters  # checks the waiters fix's wrapped BaseConnector methods
def test_import_hook_races_with_apply_from_threads() -> None:
    """Threads call apply() while the main thread imports aiohttp for the first time."""
    child = run_child(
        """
        import threading
        import aiohttp_waiterfix
        results = []
        start = threading.Barrier(5)

        def worker():
            start.wait()
            results.append(aiohttp_waiterfix.apply().applied)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads: t.start()
        start.wait()
        import aiohttp
        for t in threads: t.join()
        from aiohttp.connector import BaseConnector as C
        init = vars(C)["__init__"]
        print("RESULTS", results)
        print("ONE_LAYER", not hasattr(init.__wrapped__, "__wrapped__"))
        """
    )
    assert child.out("RESULTS") == "[True, True, True, True]"
    assert child.out("ONE_LAYER") == "True"
    assert child.status["applied"] is True
    assert child.warnings == []
