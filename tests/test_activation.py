"""Activation without code changes: ``enable``/``disable`` (sitecustomize) and ``aiohttp-waiterfix-run``.

The block edits are checked in-process on bytes; everything else runs real
interpreters of one real virtual environment per session (``uv venv`` plus
``uv pip install aiohttp==<this env's version> <this repository>``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import pytest
from childproc import ChildResult, environment, run_child

from aiohttp_waiterfix import _run
from aiohttp_waiterfix._siteblock import BEGIN, BlockError, add_block, make_block, remove_block
from aiohttp_waiterfix._status import expected_status
from aiohttp_waiterfix._versions import installed_aiohttp_version

REPO = Path(__file__).resolve().parents[1]


AIOHTTP_VERSION = installed_aiohttp_version()

USER_SITECUSTOMIZE = b'import os\nos.environ["USER_SITECUSTOMIZE_RAN"] = __file__\n'


# --- the block, on bytes (no venv) -----------------------------------------------


@pytest.mark.parametrize(
    "original",
    [
        USER_SITECUSTOMIZE,
        b"from __future__ import annotations\nimport os",  # no final newline
        b"import os\r\nX = 1\r\n",
        b"",
        b"\n\n",
    ],
    ids=["plain", "no-final-newline", "crlf", "empty", "blank-lines"],
)
def test_add_then_remove_block_gives_back_the_same_bytes(original: bytes) -> None:
    added = add_block(original)
    assert added.startswith(original)
    assert added.count(BEGIN) == 1
    compile(added, "sitecustomize.py", "exec")  # a __future__ import stays first, the file stays valid
    assert add_block(added) == added  # idempotent
    rest, created = remove_block(added)
    assert rest == original
    assert created is False


def test_block_for_a_new_file_is_marked_created() -> None:
    data = add_block(None)
    assert remove_block(data) == (b"", True)


def test_user_lines_after_the_block_are_kept() -> None:
    added = add_block(b"import os") + b"X = 1\n"  # the user appended below our block
    rest, _ = remove_block(added)
    assert rest == b"import os\nX = 1\n"


def test_an_old_or_duplicated_block_is_replaced_by_one_current_block() -> None:
    old = make_block(created=True, added_newline=False).replace(b"activate(", b"activate_old(")
    data = b"A = 1\n" + old + b"B = 2\n" + old
    refreshed = add_block(data)
    assert refreshed.count(BEGIN) == 1
    assert b"activate_old(" not in refreshed
    assert remove_block(refreshed) == (b"A = 1\nB = 2\n", True)


@pytest.mark.parametrize("damaged", [BEGIN + b"\nx = 1\n", b"x = 1\n# <<< aiohttp-waiterfix <<<\n"])
def test_a_damaged_block_is_left_alone(damaged: bytes) -> None:
    with pytest.raises(BlockError):
        add_block(damaged)
    with pytest.raises(BlockError):
        remove_block(damaged)


def test_run_wrapper_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _run.bootstrap_dir()
    assert os.path.isfile(os.path.join(ours, "sitecustomize.py"))
    env = _run.command_env({"PYTHONPATH": os.pathsep.join(["/x", ours])})
    assert env["PYTHONPATH"] == os.pathsep.join([ours, "/x"])  # first, and only once
    assert _run.command_env({})["PYTHONPATH"] == ours
    assert "PYTHONPATH" not in _run.command_env({"AIOHTTP_WAITERFIX": "0"})


# --- one real virtual environment per session --------------------------------------


class Venv(NamedTuple):
    root: Path
    python: Path
    bin: Path
    site_packages: Path

    @property
    def sitecustomize(self) -> Path:
        return self.site_packages / "sitecustomize.py"

    @property
    def run_wrapper(self) -> Path:
        return self.bin / ("aiohttp-waiterfix-run" + (".exe" if os.name == "nt" else ""))


def _uv() -> Optional[List[str]]:
    exe = shutil.which("uv")
    if exe:
        return [exe]
    import importlib.util

    return [sys.executable, "-m", "uv"] if importlib.util.find_spec("uv") else None


VENV_UNSET = ("PYTHON*", "VIRTUAL_ENV", "AIOHTTP_WAITERFIX")
"""What would change how the venv's Python starts: left out of every environment given to it."""


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    if AIOHTTP_VERSION is None:
        pytest.skip("aiohttp is not installed in the test environment")
    root = tmp_path_factory.mktemp("activation") / "venv"
    env = environment(unset=VENV_UNSET)
    subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(root)], env=env, check=True)
    bindir = root / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    # Not editable: this also checks that the wheel ships _bootstrap/ and the console script.
    subprocess.run(
        [
            *uv,
            "pip",
            "install",
            "-q",
            "-p",
            str(python),
            f"aiohttp=={AIOHTTP_VERSION}",
            str(REPO),
            "--reinstall-package",
            "aiohttp-waiterfix",
        ],
        env=env,
        check=True,
    )
    site = run_child("activation.py", "purelib", python=python, unset=VENV_UNSET).payload["purelib"]
    return Venv(root, python, bindir, Path(site))


@pytest.fixture
def site(venv: Venv) -> Iterator[Venv]:
    """The venv with no sitecustomize.py in site-packages, before and after the test."""

    def clean() -> None:
        if venv.sitecustomize.exists():
            venv.sitecustomize.unlink()
        shutil.rmtree(venv.site_packages / "__pycache__", ignore_errors=True)

    clean()
    yield venv
    clean()


def _venv_env(venv: Venv, env: Optional[Dict[str, str]]) -> Dict[str, str]:
    """What a run in the venv changes in this environment: the venv's bin/ first on PATH, then ``env``."""
    return {"PATH": str(venv.bin) + os.pathsep + os.environ.get("PATH", ""), **(env or {})}


def run(venv: Venv, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """Run a command (the CLI, the run wrapper) as a user of the venv would."""
    return subprocess.run(
        list(args),
        env=environment(_venv_env(venv, env), unset=VENV_UNSET),
        capture_output=True,
        text=True,
        timeout=120,
    )


def venv_child(
    venv: Venv,
    *args: str,
    launcher: Sequence[str] = (),
    python: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    returncode: Optional[int] = 0,
) -> ChildResult:
    """tests/children/activation.py ``args`` run by the venv's Python (or ``python``), after ``launcher``."""
    return run_child(
        "activation.py",
        *args,
        python=python or venv.python,
        launcher=launcher,
        env=_venv_env(venv, env),
        unset=VENV_UNSET,
        returncode=returncode,
    )


def cli(venv: Venv, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return run(venv, str(venv.python), "-m", "aiohttp_waiterfix", *args, env=env)


def probe(venv: Venv, *prefix: str, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """What a program that imports aiohttp gets, started by ``prefix`` (e.g. the run wrapper)."""
    return venv_child(venv, "probe", launcher=prefix, env=env).payload


def assert_activated(info: Dict[str, Any], label: str) -> None:
    expected = expected_status(AIOHTTP_VERSION)
    assert info["activated_by"] == label, info
    if expected.affected:
        assert info["applied"] is True, info["reason"]
        assert info["applied_fixes"] == [fix.id for fix in expected.fixes if fix.affected]
    else:  # e.g. 3.14.1+: fixed upstream, left untouched
        assert info["applied"] is False
        assert info["reason"] == expected.reason


def assert_killed(info: Dict[str, Any]) -> None:
    assert info["applied"] is False
    assert info["activated_by"] is None
    assert info["reason"].startswith("disabled by AIOHTTP_WAITERFIX=0"), info
    assert info["applied_fixes"] == []


def assert_clean_failure(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip()


def test_the_installed_package_ships_the_bootstrap_and_the_console_script(venv: Venv) -> None:
    bootstrap = venv.site_packages / "aiohttp_waiterfix" / "_bootstrap" / "sitecustomize.py"
    assert bootstrap.is_file(), "the wheel lacks _bootstrap/: list aiohttp_waiterfix._bootstrap in setup.cfg packages"
    assert venv.run_wrapper.is_file()


# --- enable / disable --------------------------------------------------------------


def test_enable_activates_every_new_interpreter(site: Venv) -> None:
    proc = cli(site, "enable")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "active" in proc.stdout
    assert site.sitecustomize.exists()
    info = probe(site)
    assert_activated(info, "sitecustomize")
    assert Path(info["sitecustomize"]).resolve() == site.sitecustomize.resolve()
    assert _installed_block_path(site) == str(site.sitecustomize)


def _installed_block_path(venv: Venv) -> Optional[str]:
    path: Optional[str] = venv_child(venv, "block-path").payload["path"]
    return path


def test_enable_twice_writes_one_block(site: Venv) -> None:
    assert cli(site, "enable").returncode == 0
    first = site.sitecustomize.read_bytes()
    proc = cli(site, "enable")
    assert proc.returncode == 0
    assert "already enabled" in proc.stdout
    assert site.sitecustomize.read_bytes() == first
    assert first.count(BEGIN) == 1


def test_disable_removes_the_file_enable_created(site: Venv) -> None:
    assert cli(site, "enable").returncode == 0
    proc = cli(site, "disable")
    assert proc.returncode == 0, proc.stderr
    assert not site.sitecustomize.exists()
    assert _installed_block_path(site) is None
    proc = cli(site, "disable")  # nothing left to do
    assert proc.returncode == 0 and "not enabled" in proc.stdout


@pytest.mark.parametrize(
    "original", [USER_SITECUSTOMIZE, USER_SITECUSTOMIZE.rstrip(b"\n")], ids=["final-newline", "no-final-newline"]
)
def test_user_sitecustomize_still_runs_and_comes_back_byte_identical(site: Venv, original: bytes) -> None:
    site.sitecustomize.write_bytes(original)
    assert cli(site, "enable").returncode == 0
    info = probe(site)
    assert info["user_sitecustomize"] == str(site.sitecustomize)
    assert_activated(info, "sitecustomize")
    assert cli(site, "disable").returncode == 0
    assert site.sitecustomize.read_bytes() == original


def test_enable_reports_a_sitecustomize_that_shadows_ours(site: Venv, tmp_path: Path) -> None:
    # Like Debian's /etc/python3.X/sitecustomize.py: another one earlier on sys.path wins.
    (tmp_path / "sitecustomize.py").write_bytes(USER_SITECUSTOMIZE)
    proc = cli(site, "enable", env={"PYTHONPATH": str(tmp_path)})
    assert_clean_failure(proc)
    assert str(tmp_path / "sitecustomize.py") in proc.stderr
    assert "will NOT run" in proc.stderr
    assert "aiohttp-waiterfix-run" in proc.stderr
    assert f"--site-dir {tmp_path}" in proc.stderr


def _unwritable_dir(tmp_path: Path) -> str:
    if os.name != "nt" and os.geteuid() == 0:  # root writes anywhere a mode allows nothing
        for candidate in ("/sys", "/proc"):
            try:
                fd, name = tempfile.mkstemp(dir=candidate)
            except OSError:
                return candidate
            os.close(fd)
            os.unlink(name)
        pytest.skip("running as root and no read-only directory found")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return str(locked)


def test_enable_into_an_unwritable_site_dir_fails_cleanly(venv: Venv, tmp_path: Path) -> None:
    target = _unwritable_dir(tmp_path)
    proc = cli(venv, "enable", "--site-dir", target)
    assert_clean_failure(proc)
    assert "cannot write" in proc.stderr
    assert not os.path.exists(os.path.join(target, "sitecustomize.py"))


def test_enable_into_a_missing_site_dir_fails_cleanly(venv: Venv, tmp_path: Path) -> None:
    proc = cli(venv, "enable", "--site-dir", str(tmp_path / "missing"))
    assert_clean_failure(proc)
    assert "not a directory" in proc.stderr


def test_enable_into_a_dir_not_on_sys_path_says_so(venv: Venv, tmp_path: Path) -> None:
    proc = cli(venv, "enable", "--site-dir", str(tmp_path))
    assert_clean_failure(proc)
    assert "not on its sys.path" in proc.stderr
    assert cli(venv, "disable", "--site-dir", str(tmp_path)).returncode == 0
    assert not (tmp_path / "sitecustomize.py").exists()


# --- the run wrapper ----------------------------------------------------------------


def test_run_wrapper_activates(venv: Venv) -> None:
    info = probe(venv, str(venv.run_wrapper))
    assert_activated(info, "run-wrapper")
    assert info["sitecustomize"] is not None and "_bootstrap" in info["sitecustomize"]


def test_run_wrapper_chains_to_the_user_sitecustomize(venv: Venv, tmp_path: Path) -> None:
    user = tmp_path / "sitecustomize.py"
    user.write_bytes(USER_SITECUSTOMIZE)
    info = probe(venv, str(venv.run_wrapper), env={"PYTHONPATH": str(tmp_path)})
    assert info["user_sitecustomize"] == str(user)
    assert Path(info["sitecustomize"]) == user  # the user's module is the one left in sys.modules
    assert_activated(info, "run-wrapper")


def test_run_wrapper_with_enable_keeps_both(site: Venv) -> None:
    site.sitecustomize.write_bytes(USER_SITECUSTOMIZE)
    assert cli(site, "enable").returncode == 0
    info = probe(site, str(site.run_wrapper))
    assert info["user_sitecustomize"] == str(site.sitecustomize)
    assert_activated(info, "run-wrapper")


def test_run_wrapper_covers_child_processes(venv: Venv) -> None:
    child = venv_child(venv, "spawn", "probe", launcher=[str(venv.run_wrapper)], python="python")
    assert_activated(child.payload, "run-wrapper")


def test_run_wrapper_passes_the_exit_code_through(venv: Venv) -> None:
    child = venv_child(venv, "exit", "7", launcher=[str(venv.run_wrapper)], python="python", returncode=None)
    assert child.returncode == 7


def test_run_wrapper_unknown_command(venv: Venv) -> None:
    proc = run(venv, str(venv.run_wrapper), "no-such-command-waiterfix", "x")
    assert proc.returncode == 127
    assert "no-such-command-waiterfix: command not found" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,code", [([], 2), (["--help"], 0), (["-x", "python"], 2)])
def test_run_wrapper_usage(venv: Venv, args: List[str], code: int) -> None:
    proc = run(venv, str(venv.run_wrapper), *args)
    assert proc.returncode == code
    assert "usage: aiohttp-waiterfix-run" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


# --- laziness and the kill switch, for every entry point -------------------------------


@pytest.mark.parametrize("entry", ["import", "sitecustomize", "run-wrapper"])
def test_a_process_that_never_imports_aiohttp_loads_neither_aiohttp_nor_wrapt(site: Venv, entry: str) -> None:
    prefix: List[str] = []
    if entry == "sitecustomize":
        assert cli(site, "enable").returncode == 0
    elif entry == "run-wrapper":
        prefix = [str(site.run_wrapper)]
    found = venv_child(site, "loaded", *(["shim"] if entry == "import" else []), launcher=prefix).payload
    assert found["loaded"] == []
    # ...and it was activated all the same (the hook waits for aiohttp.connector):
    assert found["pending_label"] == entry


@pytest.mark.parametrize("entry", ["import", "sitecustomize", "run-wrapper"])
def test_kill_switch(site: Venv, entry: str) -> None:
    off = {"AIOHTTP_WAITERFIX": "0"}
    if entry == "import":
        assert_killed(probe(site, env=off))  # the probe imports aiohttp_waiterfix itself
    elif entry == "sitecustomize":
        assert cli(site, "enable").returncode == 0
        assert_killed(probe(site, env=off))
    else:
        info = probe(site, str(site.run_wrapper), env=off)
        assert_killed(info)
        assert "_bootstrap" not in info["pythonpath"]  # the command ran unchanged


# --- the status command: what an application started here gets ------------------------


def status_json(venv: Venv, *prefix: str, env: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, Any]]:
    proc = run(venv, *prefix, str(venv.python), "-m", "aiohttp_waiterfix", "status", "--json", env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report: Dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, report


KILL_SWITCH_CASES = ("kill switch", "kill switch with enable", "kill switch with run wrapper")


@pytest.mark.parametrize("case", ["nothing enabled", "enabled", "run wrapper", *KILL_SWITCH_CASES])
def test_status_tells_what_an_application_started_here_gets(site: Venv, case: str) -> None:
    """The command imports the package itself, but must never count its own activation."""
    expected = expected_status(AIOHTTP_VERSION)
    prefix: List[str] = []
    env: Dict[str, str] = {}
    if case in ("enabled", "kill switch with enable"):
        assert cli(site, "enable").returncode == 0
    if case in ("run wrapper", "kill switch with run wrapper"):
        prefix = [str(site.run_wrapper)]
    if case in KILL_SWITCH_CASES:
        env = {"AIOHTTP_WAITERFIX": "0"}
    code, report = status_json(site, *prefix, env=env)
    assert report["aiohttp_version"] == AIOHTTP_VERSION
    assert [fix["id"] for fix in report["fixes"]] == [fix.id for fix in expected.fixes]
    assert [fix["affected"] for fix in report["fixes"]] == [fix.affected for fix in expected.fixes]
    gets_fixes = case in ("enabled", "run wrapper")
    if expected.affected:
        assert code == (0 if gets_fixes else 1), report
        assert report["protected"] is report["applied"] is gets_fixes
        assert all(fix["applied"] is gets_fixes for fix in report["fixes"] if fix["affected"])
        if case in KILL_SWITCH_CASES:
            assert report["reason"] == "disabled by AIOHTTP_WAITERFIX=0", report
            assert all(fix["reason"] == report["reason"] for fix in report["fixes"] if fix["affected"])
        if gets_fixes:
            assert report["activated_by"] == {"enabled": "sitecustomize", "run wrapper": "run-wrapper"}[case]
    else:  # this release needs no fix: protected whatever is enabled
        assert code == 0 and report["protected"] is True and report["applied"] is False


def test_status_text_says_how_to_turn_the_fixes_on(site: Venv) -> None:
    proc = cli(site, "status")
    if not expected_status(AIOHTTP_VERSION).affected:
        assert proc.returncode == 0 and "protected: yes" in proc.stdout
        return
    assert proc.returncode == 1
    assert "protected: NO" in proc.stdout
    for way in ("aiohttp_waiterfix enable", "aiohttp-waiterfix-run", "import aiohttp_waiterfix"):
        assert way in proc.stdout


@pytest.mark.parametrize("entry", ["import", "sitecustomize", "run-wrapper"])
def test_the_watchdog_is_off_by_default_and_on_by_environment_in_every_entry_point(site: Venv, entry: str) -> None:
    prefix: List[str] = []
    if entry == "sitecustomize":
        assert cli(site, "enable").returncode == 0
    elif entry == "run-wrapper":
        prefix = [str(site.run_wrapper)]
    assert probe(site, *prefix)["watchdog"] is None  # off: not even imported
    for value, mode in (("1", "report"), ("heal", "heal")):
        info = probe(site, *prefix, env={"AIOHTTP_WAITERFIX_WATCHDOG": value})
        assert info["watchdog"] == mode, info
        assert_activated(info, entry)
