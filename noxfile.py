"""Nox sessions for aiohttp-waiterfix.

``nox`` (no arguments) is the CI run: lint, package, tests, conformance,
conformance_unpatched, prove_failing, coexistence.  ``nox -l`` lists every session.

* ``lint`` -- ruff check, ruff format --check, mypy --strict (against aiohttp 3.10.10).
* ``tests(aiohttp=...)`` -- our test suite on every affected release, on 3.10.11
  and on the newest aiohttp (which the patch must leave alone); plus Python
  3.8 and 3.13 runs.
* ``conformance(aiohttp=...)`` -- aiohttp 3.10.11's own tests/test_connector.py,
  downloaded at test time, run against each patched release (see
  tests/conformance/).  ``conformance_unpatched`` checks that the same run
  fails, unpatched, exactly the tests of the fix.
* ``prove_failing`` -- every test marked ``fix`` fails on unpatched releases,
  every test marked ``improvement`` fails unpatched and on 3.10.11.
* Not in the default run: ``matrix`` (every release x every Python, pure-Python
  and uvloop runs; ``compat_table`` renders its records), ``conformance_all``,
  ``randomized``, ``soak``, ``bench``.

Every environment is made by uv from an interpreter given by absolute path
(``~/.pyenv/versions/3.X.Y/bin/python``), so nothing depends on pyenv shims;
a missing interpreter drops its runs (with a note) instead of failing.
Pass pytest arguments after ``--``: ``nox -s "tests(aiohttp='3.10.10')" -- -k waiter``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).resolve().parent
nox.options.default_venv_backend = "uv"
nox.options.download_python = "never"  # the machines reach package indexes only
nox.options.sessions = [
    "lint",
    "package",
    "tests",
    "conformance",
    "conformance_unpatched",
    "prove_failing",
    "coexistence",
]


# --- interpreters ------------------------------------------------------------------------------------------------

PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "versions"
PYTHON_MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def _interpreter(minor: str) -> Optional[str]:
    """The newest pyenv CPython X.Y by absolute path, else a real pythonX.Y on PATH, else None."""
    found = []
    for exe in PYENV_VERSIONS.glob(f"{minor}.*/bin/python"):
        patch = exe.parent.parent.name[len(minor) + 1 :]
        if patch.isdigit():  # not 3.13.0t or 3.12-dev
            found.append((int(patch), str(exe)))
    if found:
        return max(found)[1]
    on_path = shutil.which(f"python{minor}")
    if on_path and os.sep + "shims" + os.sep not in on_path:
        return os.path.realpath(on_path)
    return None


PYTHONS: Dict[str, Optional[str]] = {minor: _interpreter(minor) for minor in PYTHON_MINORS}
MINOR_OF: Dict[str, str] = {path: minor for minor, path in PYTHONS.items() if path}
MISSING_PYTHONS = [minor for minor, path in PYTHONS.items() if path is None]
if MISSING_PYTHONS:
    print(f"noxfile: no interpreter for Python {', '.join(MISSING_PYTHONS)}: their runs are left out", file=sys.stderr)
# Python 3.11 runs everything that is not about another Python; without it, nox's own interpreter.
DEFAULT_PYTHON = PYTHONS["3.11"] or sys.executable


# --- releases ----------------------------------------------------------------------------------------------------


def _load(name: str, path: Path) -> ModuleType:
    """Import a file by path, without importing its package (aiohttp_waiterfix activates on import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AFFECTED: Tuple[str, ...] = _load("_waiterfix_versions", ROOT / "aiohttp_waiterfix" / "_versions.py").AFFECTED_RELEASES
FIXED_RELEASE = "3.10.11"  # first release with the fix: the patch must leave it alone
NEWEST_RELEASE = "3.14.5"  # newest aiohttp: likewise
NEWEST_AFFECTED = AFFECTED[-1]
RELEASES = (*AFFECTED, FIXED_RELEASE, NEWEST_RELEASE)  # what our suite runs on: patched, then left alone

# Newest CPython each release has wheels for on PyPI (checked with `uv pip install --dry-run --only-binary aiohttp`;
# every release has wheels for 3.8 and up to that).  3.14.x needs Python >= 3.10.
WHEELS_UP_TO: Tuple[Tuple[str, str], ...] = (
    ("3.8.0", "3.10"),  # 3.8.0, 3.8.1
    ("3.8.2", "3.11"),  # 3.8.2-3.8.6
    ("3.9.0", "3.12"),  # 3.9.0-3.10.4
    ("3.10.5", "3.13"),  # 3.10.5 on, 3.10.11 and later too
)


def _key(version: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def has_wheel(release: str, minor: str) -> bool:
    newest = [up_to for first, up_to in WHEELS_UP_TO if _key(release) >= _key(first)][-1]
    return _key("3.8") <= _key(minor) <= _key(newest)


def python_for(release: str) -> Tuple[str, Optional[str]]:
    """(minor, interpreter) a release's single run uses: 3.11, else the newest Python it has wheels for."""
    if has_wheel(release, "3.11") or PYTHONS["3.11"] is None:
        return "3.11", DEFAULT_PYTHON
    minor = max((m for m in PYTHON_MINORS if has_wheel(release, m) and PYTHONS[m]), key=_key, default="3.11")
    return minor, PYTHONS[minor] or DEFAULT_PYTHON


def release_param(release: str) -> object:
    """nox.param(python, release) for python_for(release); named by the release (and the Python if not 3.11)."""
    minor, python = python_for(release)
    label = f"aiohttp='{release}'" if minor == "3.11" else f"python='{minor}', aiohttp='{release}'"
    return nox.param(python, release, id=label)


def _param(python: Optional[str], minor: str, release: str) -> List[object]:
    """One (python, aiohttp) run named by version, or nothing when that Python is missing."""
    return [] if python is None else [nox.param(python, release, id=f"python='{minor}', aiohttp='{release}'")]


# --- helpers -----------------------------------------------------------------------------------------------------

TEST_DEPS = ("pytest", "hypothesis")


def install(session: nox.Session, release: str, *deps: str) -> None:
    """aiohttp==release, this package (editable) and deps, in one resolution."""
    session.install(f"aiohttp=={release}", "-e", str(ROOT), *deps)


def expects_patch(release: str, env: Optional[Dict[str, str]] = None) -> bool:
    return release in AFFECTED and (env or {}).get("AIOHTTP_WAITERFIX", "1") != "0"


def check_status(session: nox.Session, release: str, env: Optional[Dict[str, str]] = None) -> None:
    """Fail unless the patch is applied on affected releases and left alone on the others."""
    code = (
        "import aiohttp_waiterfix, aiohttp, aiohttp.connector; s = aiohttp_waiterfix.status(); "
        f"print('aiohttp', aiohttp.__version__, '|', s); "
        f"assert aiohttp.__version__ == {release!r}, aiohttp.__version__; "
        f"assert s.applied is {expects_patch(release, env)}, s"
    )
    session.run("python", "-c", code, env=env, silent=False)


def pytest_cmd(session: nox.Session, *args: str) -> List[str]:
    return ["pytest", *args, *session.posargs]


def junit_results(path: Path) -> List[Tuple[str, str, str]]:
    """(test id, outcome, message) from a pytest junit xml; outcome: passed, failed, error or skipped."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):  # no file, or pytest died while writing it: no results to report
        return []
    results = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = " ".join((child.get("message") or "").split())[:110]
                break
        results.append((name, outcome, message))
    return results


# Each run of our suite leaves one JSON record here; tools/compat_table.py turns them into the README's table.
RESULTS_DIR = Path(os.environ.get("WAITERFIX_RESULTS_DIR", str(ROOT / ".nox" / "_results")))


def run_suite(session: nox.Session, release: str, variant: str, args: List[str], env: Dict[str, str]) -> None:
    """pytest on our suite, then record (python, release, variant) -> outcome and counts, pass or fail."""
    junit = Path(session.create_tmp()) / "suite.xml"
    junit.unlink(missing_ok=True)
    started, outcome = time.monotonic(), "failed"
    try:
        session.run(*pytest_cmd(session, "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *args), env=env)
        outcome = "passed"
    finally:
        counts: Dict[str, int] = {}
        for _, result, _ in junit_results(junit):
            counts[result] = counts.get(result, 0) + 1
        python = str(session.python)
        record = {
            "python": MINOR_OF.get(python, python),
            "aiohttp": release,
            "variant": variant,
            "patched": expects_patch(release, env),
            "outcome": outcome,
            "counts": counts,
            "seconds": round(time.monotonic() - started),
            "session": session.name,
        }
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        name = f"{record['python']}-{release}-{variant}.json"
        (RESULTS_DIR / name).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


# --- lint --------------------------------------------------------------------------------------------------------


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy --strict on the package (types from aiohttp 3.10.10)."""
    session.install("ruff", "mypy", f"aiohttp=={NEWEST_AFFECTED}", "-e", str(ROOT))
    failures = []
    for cmd in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy", "--strict", "aiohttp_waiterfix"]):
        # Run all three, then fail: one report shows every problem.
        try:
            session.run(*cmd)
        except CommandFailed:
            failures.append(" ".join(cmd))
    if failures:
        session.error(f"failed: {'; '.join(failures)}")


# --- tests -------------------------------------------------------------------------------------------------------

TEST_RUNS: List[object] = [
    # Python 3.11, or 3.10 for 3.8.0 and 3.8.1 (no 3.11 wheels).
    *(release_param(release) for release in RELEASES),
    # Oldest Python, newest 3.9 release (wheels for 3.8 exist for every affected release).
    *_param(PYTHONS["3.8"], "3.8", "3.9.5"),
    # Newest Python: aiohttp publishes cp313 wheels from 3.10.5 on, so 3.10.10 installs from a wheel.
    *_param(PYTHONS["3.13"], "3.13", NEWEST_AFFECTED),
]


# The whole suite on every release takes ~50 s a run, 28 runs: ~25 of the 30 minutes the default CI run may
# take on 2 cores.  So the full suite runs on these releases (each line of patched code at both ends, the
# fixed releases, and the extra Pythons); the others skip `slow` tests and the suites that exercise start-up
# activation in child processes, whose code does not depend on the release (about 10 s a run).  Set
# WAITERFIX_TESTS_FULL=1 for the full suite everywhere; `matrix` always runs it.
TESTS_FULL = frozenset({"3.8.0", "3.8.6", "3.9.0", "3.9.5", "3.10.0", NEWEST_AFFECTED, FIXED_RELEASE, NEWEST_RELEASE})
SUBPROCESS_SUITES = ("tests/test_activation.py", "tests/test_startup.py", "tests/test_coexistence.py")


def suite_args(aiohttp: str, *, full: bool) -> List[str]:
    """pytest selection for our suite on ``aiohttp``."""
    args, skip = [], []
    if not full:
        skip.append("slow")
        args += [f"--ignore={suite}" for suite in SUBPROCESS_SUITES if (ROOT / suite).exists()]
    if aiohttp not in AFFECTED:
        # Nothing is patched there: `improvement` tests fail by design (prove_failing checks that they do).
        skip.append("improvement")
    if skip:
        args += ["-m", " and ".join(f"not {marker}" for marker in skip)]
    return args


@nox.session
@nox.parametrize(("python", "aiohttp"), TEST_RUNS)
def tests(session: nox.Session, aiohttp: str) -> None:
    """Our test suite (tests/, without tests/conformance) on one aiohttp release."""
    install(session, aiohttp, *TEST_DEPS)
    check_status(session, aiohttp)
    full = aiohttp in TESTS_FULL or os.environ.get("WAITERFIX_TESTS_FULL") == "1"
    run_suite(session, aiohttp, "wheel" if full else "wheel-reduced", suite_args(aiohttp, full=full), {})


# --- conformance: aiohttp 3.10.11's own connector tests ----------------------------------------------------------

# pytest, pytest-mock and trustme as pinned by aiohttp 3.10.11's requirements/test.txt (its conftest uses trustme
# when present).  test_connector.py imports aiohappyeyeballs itself, a dependency of aiohttp only from 3.10.0:
# at least 3.10.11's pin, and whatever the release under test requires.
CONFORMANCE_DEPS = ("pytest==8.3.2", "pytest-mock==3.14.0", "trustme==1.1.0", "aiohappyeyeballs>=2.3.4")
UPSTREAM_TESTS = ROOT / "tests" / "conformance" / "upstream" / "test_connector.py"

# The default run (`conformance`) takes a subset, ~15 s a release: both ends of each line of releases whose
# patched methods are the same code (3.8.0; 3.8.1-3.8.6; 3.9.0-3.10.10, byte-identical) and the releases where
# the most exclusions change (3.10.0 happy eyeballs, 3.10.5/3.10.6 SSL contexts and DNS tasks).  The default CI
# run must stay well under 30 minutes on 2 cores and `tests` already runs every release; `conformance_all`
# runs all of them (all passed, ~7 min).
CONFORMANCE_DEFAULT = ("3.8.0", "3.8.6", "3.9.0", "3.9.5", "3.10.0", "3.10.5", "3.10.6", "3.10.10")


def fetch_upstream(session: nox.Session) -> None:
    """Download aiohttp 3.10.11's sdist once (pinned sha256) and extract its connector tests."""
    script = str(ROOT / "tests" / "conformance" / "fetch_upstream.py")
    if importlib.util.find_spec("pip") is not None:
        session.run(sys.executable, script, external=True, silent=True)  # nox's interpreter has pip
    else:
        session.install("pip")
        session.run("python", script, silent=True)


def run_conformance(session: nox.Session, release: str, *, patched: bool) -> Path:
    """Run the upstream file against ``release``; return the junit xml path."""
    fetch_upstream(session)
    install(session, release, *CONFORMANCE_DEPS)
    # Upstream's unix_sockname fixture puts the socket under $TMPDIR, which nox points into the checkout; a deep
    # checkout makes the path longer than AF_UNIX allows.  The system temp dir is short.
    env = {"AIOHTTP_WAITERFIX": "1" if patched else "0", "TMPDIR": tempfile.gettempdir()}
    check_status(session, release, env)
    junit = Path(session.create_tmp()) / f"conformance-{release}-{'patched' if patched else 'unpatched'}.xml"
    junit.unlink(missing_ok=True)
    # Unpatched, failures are the expected outcome (the caller checks which): no per-test failure report.
    report = ["-rfE"] if patched else ["-rN", "--tb=no"]
    session.run(
        *pytest_cmd(
            session,
            "-p",
            "no:cacheprovider",
            "--confcutdir",
            str(ROOT / "tests" / "conformance"),  # keep tests/conftest.py out of the upstream run
            "-q",
            *report,
            f"--junitxml={junit}",
            str(UPSTREAM_TESTS),
        ),
        env=env,
        success_codes=[0] if patched else [0, 1],
    )
    return junit


@nox.session
@nox.parametrize(("python", "aiohttp"), [release_param(release) for release in CONFORMANCE_DEFAULT])
def conformance(session: nox.Session, aiohttp: str) -> None:
    """aiohttp 3.10.11's tests/test_connector.py against the patched release (exclusions: tests/conformance)."""
    run_conformance(session, aiohttp, patched=True)


@nox.session
@nox.parametrize(("python", "aiohttp"), [release_param(release) for release in AFFECTED])
def conformance_all(session: nox.Session, aiohttp: str) -> None:
    """Like conformance, on every affected release whatever the default run covers."""
    run_conformance(session, aiohttp, patched=True)


@nox.session
@nox.parametrize(("python", "aiohttp"), [release_param(release) for release in (AFFECTED[0], NEWEST_AFFECTED)])
def conformance_unpatched(session: nox.Session, aiohttp: str) -> None:
    """The conformance run means something: unpatched, exactly the tests of the fix fail."""
    fix_tests = _load("_waiterfix_fix_tests", ROOT / "tests" / "conformance" / "fix_tests.py").FIX_TESTS
    results = junit_results(run_conformance(session, aiohttp, patched=False))
    failed = {name.rsplit("::", 1)[1] for name, outcome, _ in results if outcome in ("failed", "error")}
    session.log(f"unpatched aiohttp {aiohttp}: {len(failed)} of {len(results)} upstream tests fail")
    problems = [f"fails but is not a test of the fix: {name}" for name in sorted(failed - fix_tests)]
    problems += [f"test of the fix passes unpatched: {name}" for name in sorted(fix_tests - failed)]
    if not failed or problems:
        session.error("\n".join(problems or ["no upstream test failed unpatched: the conformance run proves nothing"]))


# --- prove_failing -----------------------------------------------------------------------------------------------

# release -> markers whose every test must fail there with AIOHTTP_WAITERFIX=0
PROOFS: Dict[str, Tuple[str, ...]] = {
    NEWEST_AFFECTED: ("fix", "improvement"),
    "3.9.5": ("fix",),
    "3.8.6": ("fix",),  # the 3.8 line's connector differs in small ways: prove the tests there too
    FIXED_RELEASE: ("improvement",),  # beyond upstream: 3.10.11 must fail them too
}


@nox.session
@nox.parametrize(("python", "aiohttp"), [release_param(release) for release in PROOFS])
def prove_failing(session: nox.Session, aiohttp: str) -> None:
    """Every `fix` test fails unpatched; every `improvement` test fails unpatched and on 3.10.11."""
    install(session, aiohttp, *TEST_DEPS)
    env = {"AIOHTTP_WAITERFIX": "0"}
    check_status(session, aiohttp, env)
    problems = []
    for marker in PROOFS[aiohttp]:
        junit = Path(session.create_tmp()) / f"prove-{marker}.xml"
        junit.unlink(missing_ok=True)
        session.run(
            # Failing is the expected outcome here: no per-test failure report (-rN), the log below says what failed.
            *pytest_cmd(session, "-p", "no:cacheprovider", "-q", "--tb=no", "-rN", "-m", marker, f"--junitxml={junit}"),
            env=env,
            success_codes=[0, 1, 5],  # failures are what we want; 5 = no tests selected, reported below
        )
        results = junit_results(junit)
        if not results:
            problems.append(f"-m {marker}: no tests selected (no test carries the `{marker}` marker yet?)")
            continue
        session.log(f"-m {marker} on unpatched aiohttp {aiohttp}: {len(results)} tests")
        for name, outcome, message in results:
            # Only a failure in the test itself proves something; a setup error or a skip does not.
            verdict = "ok, fails unpatched" if outcome == "failed" else f"BAD: {outcome}"
            session.log(f"  {verdict:<19} {name}  {message}")
            if outcome != "failed":
                problems.append(f"-m {marker}: {name} {outcome} on unpatched aiohttp {aiohttp} (must fail)")
    if problems:
        session.error("\n".join(problems))


# --- not in the default run --------------------------------------------------------------------------------------


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """benchmarks/run_all.py on Python 3.11; the benchmarks build their own environments with uv."""
    session.run(DEFAULT_PYTHON, str(ROOT / "benchmarks" / "run_all.py"), *session.posargs, external=True)


@nox.session(python=DEFAULT_PYTHON)
def soak(session: nox.Session) -> None:
    """benchmarks/soak.py with aiohttp 3.10.10 and the package."""
    script = ROOT / "benchmarks" / "soak.py"
    if not script.exists():
        session.error(f"{script.relative_to(ROOT)} does not exist yet")
    install(session, NEWEST_AFFECTED)
    check_status(session, NEWEST_AFFECTED)
    session.run("python", str(script), *session.posargs)


RANDOMIZED = "tests/test_randomized.py"


@nox.session(python=DEFAULT_PYTHON)
@nox.parametrize("aiohttp", ["3.9.5", NEWEST_AFFECTED, FIXED_RELEASE])
def randomized(session: nox.Session, aiohttp: str) -> None:
    """The hypothesis harness with many examples (HYPOTHESIS_PROFILE=many)."""
    install(session, aiohttp, *TEST_DEPS)
    check_status(session, aiohttp)
    session.run(
        *pytest_cmd(session, "-p", "no:cacheprovider", "-q", *suite_args(aiohttp, full=True), RANDOMIZED),
        env={"HYPOTHESIS_PROFILE": "many"},
    )


# Pairs left out of the matrix: neither a wheel nor a working build.  aiohttp 3.8.0 and 3.8.1 predate Python
# 3.11, where asyncio.TimeoutError became the built-in TimeoutError, an OSError: their client turns a request
# timeout into ClientOSError (3.8.2 fixed it; seen failing test_randomized's timeout checks on 3.12).
MATRIX_LEFT_OUT: Dict[Tuple[str, str], str] = {
    **{
        (release, minor): "aiohttp < 3.8.2 does not support Python 3.11+ (timeouts become ClientOSError)"
        for release in ("3.8.0", "3.8.1")
        for minor in ("3.11", "3.12", "3.13")
    },
    **{(NEWEST_RELEASE, minor): f"aiohttp {NEWEST_RELEASE} requires Python 3.10+" for minor in ("3.8", "3.9")},
}


def _matrix_runs() -> List[object]:
    runs: List[object] = []
    for minor in PYTHON_MINORS:
        python = PYTHONS[minor]
        if python is None:
            continue
        for release in RELEASES:
            if (release, minor) in MATRIX_LEFT_OUT:
                continue
            # No wheel (3.8.2-3.8.6 on 3.12+, 3.9.0-3.10.4 on 3.13): build the sdist without its C extensions.
            variant = "wheel" if has_wheel(release, minor) else "sdist-pure-python"
            label = f"python='{minor}', aiohttp='{release}'" + ("" if variant == "wheel" else f", {variant}")
            runs.append(nox.param(python, release, variant, id=label))
    for variant in ("pure-python", "uvloop"):
        label = f"python='3.11', aiohttp='{NEWEST_AFFECTED}', {variant}"
        runs.append(nox.param(DEFAULT_PYTHON, NEWEST_AFFECTED, variant, id=label))
    return runs


@nox.session
@nox.parametrize(("python", "aiohttp", "variant"), _matrix_runs())
def matrix(session: nox.Session, aiohttp: str, variant: str) -> None:
    """Our tests on every release x every Python 3.8-3.13, plus pure-Python and uvloop runs.

    Each run leaves a record in .nox/_results; `nox -s compat_table` turns them into the README's table.
    """
    env: Dict[str, str] = {}
    if variant == "sdist-pure-python":
        # AIOHTTP_NO_EXTENSIONS=1 at build time builds no C extension, at run time it selects the
        # pure-Python code; --no-binary builds aiohttp from its sdist.
        env["AIOHTTP_NO_EXTENSIONS"] = "1"
        session.install("--no-binary", "aiohttp", f"aiohttp=={aiohttp}", "-e", str(ROOT), *TEST_DEPS, env=env)
    elif variant == "pure-python":
        env["AIOHTTP_NO_EXTENSIONS"] = "1"  # the wheel is installed, its C parser and helpers stay unused
        install(session, aiohttp, *TEST_DEPS)
    elif variant == "uvloop":
        env["WAITERFIX_TEST_UVLOOP"] = "1"  # tests/conftest.py then sets uvloop's event loop policy
        install(session, aiohttp, *TEST_DEPS, "uvloop")
    else:
        install(session, aiohttp, *TEST_DEPS)
    check_status(session, aiohttp, env)
    run_suite(session, aiohttp, variant, suite_args(aiohttp, full=True), env)


# --- packaging and coexistence -------------------------------------------------------------------------------------


@nox.session(python=DEFAULT_PYTHON)
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, install the wheel alone into this clean env, and check what users get."""
    session.install("build")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT))
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    session.install(str(wheel))  # no aiohttp: importing must still work, and say why nothing was patched
    check = (
        "import pathlib, sys, tarfile, zipfile, aiohttp_waiterfix as w; "
        "pkg = pathlib.Path(w.__file__).parent; "
        "assert (pkg / 'py.typed').exists() and (pkg / '_bootstrap' / 'sitecustomize.py').exists(); "
        "assert 'site-packages' in str(pkg), pkg; "
        f"names = tarfile.open({str(sdist)!r}).getnames(); "
        "assert any(n.endswith('aiohttp_waiterfix/py.typed') for n in names), 'py.typed missing from sdist'; "
        f"wheel_names = zipfile.ZipFile({str(wheel)!r}).namelist(); "
        "assert not any(n.startswith('tests/') for n in wheel_names), 'tests shipped in the wheel'; "
        "assert any(n.count('/') == 1 and n.endswith('/LICENSE') for n in names), 'LICENSE missing from sdist'; "
        "assert any(n.count('/') == 1 and n.endswith('/CHANGELOG.md') for n in names), 'no CHANGELOG.md in sdist'; "
        "assert any('.dist-info/' in n and n.endswith('/LICENSE') for n in wheel_names), 'LICENSE missing from wheel'; "
        "print(w.__version__, w.status())"
    )
    session.chdir(str(tmp))  # away from the checkout, so the installed wheel is what gets imported
    session.run("python", "-c", check, env={"PYTHONPATH": ""})
    session.run("python", "-m", "aiohttp_waiterfix", "--help", silent=True)


# Pinned as tested together (Python 3.11, aiohttp 3.10.10); see tests/test_coexistence.py.
COEXISTENCE_DEPS = (
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-instrumentation-aiohttp-client==0.66b1",
    "ddtrace==4.16.0",
)


@nox.session(python=DEFAULT_PYTHON)
def coexistence(session: nox.Session) -> None:
    """With OpenTelemetry's and ddtrace's aiohttp instrumentation active too: still fixed, their spans intact."""
    install(session, NEWEST_AFFECTED, "pytest", *COEXISTENCE_DEPS)
    # -p no:ddtrace: ddtrace's own pytest plugin would try to reach a local trace agent.
    session.run(
        "pytest", "-p", "no:ddtrace", "-p", "no:cacheprovider", "-q", "tests/test_coexistence.py", *session.posargs
    )


@nox.session(venv_backend="none")
def compat_table(session: nox.Session) -> None:
    """README's compatibility table from the runs' records (.nox/_results, or the directories given after --)."""
    session.run(sys.executable, str(ROOT / "tools" / "compat_table.py"), *session.posargs, external=True)
