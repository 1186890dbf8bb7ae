"""Start-up robustness: every case runs in a fresh interpreter.

The shim is imported by applications (and by sitecustomize) in every kind of
environment; whatever the environment, importing it must not raise, must not
change the application's own import errors, and must end with a ``status()``
that says what happened and why, plus exactly one ``WaiterfixWarning`` where
one is due.  Fake ``aiohttp`` packages are put first on ``PYTHONPATH``.

Each case is a run of tests/children/startup.py, which prints what it found
and its final ``status()`` as one JSON line; warnings are counted on stderr
(the child runs with ``-W always``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest
from childproc import CHILDREN, ChildResult, run_child

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


def startup_child(
    *args: str, env: Optional[Dict[str, str]] = None, python_args: Sequence[str] = ("-W", "always")
) -> ChildResult:
    """``tests/children/startup.py args...`` from an environment that neither activates nor steers the shim."""
    return run_child(
        "startup.py",
        *args,
        env=env,
        unset=("PYTHONPATH", "AIOHTTP_WAITERFIX", "PYTHONWARNINGS"),
        python_args=python_args,
    )


def fake_aiohttp(root: Path, version: Optional[str], connector: str = "plain") -> Dict[str, str]:
    """A copy of tests/children/fake_aiohttp as ``root/aiohttp``, and the environment that puts it first
    on ``PYTHONPATH`` with ``__version__ = version`` (None: no ``__version__``) and a ``connector`` of
    that kind (``plain``, ``raise:<error>``, ``fail-once``: see its connector.py)."""
    shutil.copytree(CHILDREN / "fake_aiohttp", root / "aiohttp", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(root), "FAKE_AIOHTTP_CONNECTOR": connector}
    if version is not None:
        env["FAKE_AIOHTTP_VERSION"] = version
    return env


# ------------------------------------------------------------- import paths


def steps(
    *names: str, env: Optional[Dict[str, str]] = None, python_args: Sequence[str] = ("-W", "always")
) -> ChildResult:
    """A child that takes these steps (shim, aiohttp, connector, apply) in order."""
    return startup_child("steps", *names, env=env, python_args=python_args)


@needs_affected
@pytest.mark.parametrize("order", ["shim-first", "aiohttp-first", "connector-only"])
def test_import_order(order: str) -> None:
    child = steps(
        *{
            "shim-first": ("shim", "aiohttp"),
            "aiohttp-first": ("aiohttp", "shim"),
            "connector-only": ("shim", "connector"),
        }[order]
    )
    status = child.payload["status"]
    assert status["applied"] is True
    assert status["activated_by"] == "import"
    assert status["aiohttp_version"] == aiohttp.__version__
    assert child.warnings == []


def test_import_alone_imports_neither_aiohttp_nor_wrapt() -> None:
    found = startup_child("import-alone").payload
    assert found["heavy"] == []
    assert found["typing"] is False


def test_status_before_aiohttp_is_imported_says_waiting() -> None:
    child = steps("shim")
    assert child.payload["aiohttp_imported"] is False
    status = child.payload["status"]
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
    child = startup_child("not-installed", str(isolated), python_args=("-S", "-E", "-W", "always"))
    found = child.payload
    assert found["app_error"] == "ModuleNotFoundError"
    assert found["same"] is True
    assert found["applied"] is False and found["reason"].startswith("aiohttp cannot be imported")
    status = found["status"]  # status() must tell what apply() found, not "waiting"
    assert status["applied"] is False
    assert status["affected"] is None
    assert status["aiohttp_version"] is None
    assert "cannot be imported" in status["reason"]
    assert len(child.warnings) == 1, child.stderr


@pytest.mark.parametrize("error", ["ImportError", "RuntimeError"])
def test_aiohttp_import_error_propagates_unchanged(tmp_path: Path, error: str) -> None:
    child = startup_child("app-import", env=fake_aiohttp(tmp_path, "3.10.10", f"raise:{error}"))
    found = child.payload
    assert (found["error"], found["message"]) == (error, "the application sees this: from aiohttp.connector")
    assert found["chain"] == ["None", "None"]
    assert found["last_frame"] == ["aiohttp", "connector.py"]
    assert found["status"]["applied"] is False
    assert child.warnings == []


def test_hook_survives_a_failed_first_import(tmp_path: Path) -> None:
    """aiohttp.connector fails once (say a missing optional dependency), then imports:
    the second import must still be seen (here: refused, the fake's code is unknown)."""
    found = startup_child("app-import", "retry", env=fake_aiohttp(tmp_path, "3.10.10", "fail-once")).payload
    assert (found["error"], found["message"]) == ("ImportError", "first import fails")
    status = found["status"]
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
    child = steps("shim", "aiohttp", "apply", env=fake_aiohttp(tmp_path, version))
    status = child.payload["status"]
    assert status["applied"] is False
    assert status["affected"] is affected
    assert words in status["reason"]
    assert status["aiohttp_version"] == version
    assert len(child.warnings) == warned, child.stderr


def test_affected_version_with_foreign_code_is_refused(tmp_path: Path) -> None:
    child = steps("shim", "aiohttp", env=fake_aiohttp(tmp_path, "3.10.10"))
    status = child.payload["status"]
    assert status["applied"] is False
    assert status["affected"] is True
    assert "refused" in status["reason"]
    assert len(child.warnings) == 1, child.stderr


@needs_waiters
@pytest.mark.parametrize("change", ["replaced", "wrapped", "added"])
def test_changed_connector_is_refused(change: str) -> None:
    name = {"replaced": "_release_waiter", "wrapped": "_close", "added": "_wait_for_available_connection"}[change]
    child = startup_child("edit-connector", change, env={"AIOHTTP_WAITERFIX": "0"})
    status = child.payload["status"]
    assert status["applied"] is False
    assert status["affected"] is True
    assert status["activated_by"] == "apply()"
    assert "refused" in status["reason"] and name in status["reason"]
    assert child.payload["same"] is True
    assert len(child.warnings) == 1, child.stderr


# ----------------------------------------------------------- the kill switch


@pytest.mark.parametrize("value", ["0", "false", " OFF ", "No"])
def test_kill_switch(value: str) -> None:
    child = steps("shim", "aiohttp", env={"AIOHTTP_WAITERFIX": value})
    status = child.payload["status"]
    assert status["applied"] is False
    assert "AIOHTTP_WAITERFIX" in status["reason"]
    assert child.warnings == []


@pytest.mark.parametrize("value", ["maybe", "2", "enable", "0 1"])
def test_garbage_in_the_kill_switch_warns_once_and_keeps_the_default(value: str) -> None:
    child = steps("shim", "aiohttp", env={"AIOHTTP_WAITERFIX": value})
    assert len(child.warnings) == 1, child.stderr
    assert repr(value) in child.warnings[0] or value in child.warnings[0]
    if NEEDS_FIXES:
        assert child.payload["status"]["applied"] is True


@needs_affected
@pytest.mark.parametrize("value", ["", "1", "true", "on", "YES"])
def test_kill_switch_on_values(value: str) -> None:
    child = steps("shim", "aiohttp", env={"AIOHTTP_WAITERFIX": value})
    assert child.payload["status"]["applied"] is True
    assert child.warnings == []


# --------------------------------------------------------- warnings as errors


def test_warnings_as_errors_never_break_the_application_import(tmp_path: Path) -> None:
    """Under ``-W error`` a due warning must not turn into the application's ImportError."""
    found = steps(
        "shim", "aiohttp", env=fake_aiohttp(tmp_path, "3.10.5+vendor"), python_args=("-W", "error::RuntimeWarning")
    ).payload
    assert found["done"] == ["shim", "aiohttp"]
    assert found["aiohttp_version"] == "3.10.5+vendor"
    assert found["status"]["applied"] is False


def test_warnings_as_errors_never_break_importing_the_shim() -> None:
    found = steps("shim", env={"AIOHTTP_WAITERFIX": "maybe"}, python_args=("-W", "error::RuntimeWarning")).payload
    assert found["done"] == ["shim"]


# ------------------------------------------------------------- apply/revert


@needs_affected
def test_apply_revert_apply_in_a_fresh_process() -> None:
    child = startup_child("apply-revert", env={"AIOHTTP_WAITERFIX": "0"})
    found = child.payload
    assert found["flags"] == [True, False, True]
    assert found["restored"] is True
    assert found["same_patch"] is True
    assert found["one_layer"] is True
    assert found["status"]["applied"] is True
    assert found["status"]["activated_by"] == "apply()"
    assert child.warnings == []


@needs_affected
def test_apply_and_revert_from_many_threads() -> None:
    child = startup_child("threads", env={"AIOHTTP_WAITERFIX": "0"})
    found = child.payload
    assert found["errors"] == []
    assert found["consistent"] is True
    assert found["one_layer"] is True
    assert found["restored"] is True
    assert child.warnings == []


@needs_affected
def test_import_hook_races_with_apply_from_threads() -> None:
    """Threads call apply() while the main thread imports aiohttp for the first time."""
    child = startup_child("hook-race")
    found = child.payload
    assert found["results"] == [True, True, True, True]
    assert found["one_layer"] is True
    assert found["status"]["applied"] is True
    assert child.warnings == []
