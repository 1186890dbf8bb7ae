"""Nox sessions for aiohttp-waiterfix: the sessions only; what they run on is in tools/testplan.py.

``nox`` (no arguments) is the CI run: lint, package, tests, conformance,
conformance_unpatched, prove_failing, coexistence.  ``nox -l`` lists every session.

* ``lint`` -- ruff check, ruff format --check, mypy --strict.
* ``tests(aiohttp=...)`` -- our suite on a representative set of releases: both
  ends of every code variant of every fix, each fixing release and the newest
  release (left untouched); plus a Python 3.8 and a Python 3.13 run.
* ``conformance(fix=..., aiohttp=...)`` -- each fixing release's own tests,
  downloaded at test time, against patched older releases (tests/conformance/).
  ``conformance_unpatched`` checks that, unpatched, exactly the tests of the fix fail.
* ``prove_failing`` -- every test marked ``fix(id)`` fails on the unpatched releases
  of that fix, every ``improvement(id)`` test also on the release that fixed it.
* Not in the default run: ``matrix`` (every release x every Python, pure-Python
  and uvloop runs; ``compat_table`` renders its records), ``conformance_all``,
  ``fingerprints``, ``randomized``, ``soak``, ``bench``.

Every environment is made by uv from an interpreter given by absolute path
(``tools/pythons.py``), so nothing depends on pyenv shims; a missing interpreter
drops its runs (with a note) instead of failing.
Pass pytest arguments after ``--``: ``nox -s "tests(aiohttp='3.10.10')" -- -k waiter``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))

import testplan as plan  # noqa: E402  (tools/ is on the path now)

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

MISSING = [minor for minor, path in plan.PYTHONS.items() if path is None]
if MISSING:
    print(f"noxfile: no interpreter for Python {', '.join(MISSING)}: their runs are left out", file=sys.stderr)
DEFAULT_PYTHON = plan.PYTHONS[plan.DEFAULT_MINOR] or sys.executable
RESULTS_DIR = Path(os.environ.get("WAITERFIX_RESULTS_DIR", str(ROOT / ".nox" / "_results")))
TEST_DEPS = ("pytest", "hypothesis", "trustme")  # trustme: the sni-key tests' loopback TLS certificates
LINT_RELEASE = "3.10.10"  # mypy checks the package against this release's types


def release_params(releases: Iterable[str], fix: Optional[str] = None) -> List[object]:
    """nox.param(python, [fix,] release) of each release on its own Python, named by them (and Python if not 3.11).

    A release with no interpreter here it installs on is left out (the noxfile said so at start).
    """
    params = []
    for release in releases:
        minor, python = plan.python_for(release)
        if python is None:
            continue
        names = [] if minor == plan.DEFAULT_MINOR else [f"python='{minor}'"]
        names += ([] if fix is None else [f"fix='{fix}'"]) + [f"aiohttp='{release}'"]
        values = [python] + ([] if fix is None else [fix]) + [release]
        params.append(nox.param(*values, id=", ".join(names)))
    return params


def install(session: nox.Session, release: str, *deps: str, env: Optional[Dict[str, str]] = None) -> None:
    """aiohttp==release, this package (editable) and deps, in one resolution."""
    session.install(f"aiohttp=={release}", "-e", str(ROOT), *deps, env=env)


def applied_fixes(session: nox.Session, release: str, env: Optional[Dict[str, str]] = None) -> List[str]:
    """The fixes the shim applies here; fails unless they are exactly those declared for ``release``."""
    switched_off = (env or {}).get("AIOHTTP_WAITERFIX") == "0"
    expected = [] if switched_off else plan.fixes_for(release)
    code = (
        "import aiohttp_waiterfix, aiohttp, aiohttp.connector\n"
        "from aiohttp_waiterfix import _patcher\n"
        "s = aiohttp_waiterfix.status()\n"
        "print('aiohttp', aiohttp.__version__, '|', s.reason)\n"
        f"assert aiohttp.__version__ == {release!r}, aiohttp.__version__\n"
        f"assert list(_patcher.applied_fixes()) == {expected!r}, s\n"
    )
    session.run("python", "-c", code, env=env, silent=False)
    return expected


def run_suite(session: nox.Session, release: str, variant: str, args: List[str], env: Dict[str, str]) -> None:
    """pytest on our suite, then a record of (python, release, variant): the fixes, the outcome and the counts."""
    applied = applied_fixes(session, release, env)
    junit = Path(session.create_tmp()) / "suite.xml"
    junit.unlink(missing_ok=True)
    started, outcome = time.monotonic(), "failed"
    try:
        session.run("pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *args, *session.posargs, env=env)
        outcome = "passed"
    finally:
        plan.write_record(RESULTS_DIR, str(session.python), release, variant, applied, outcome, junit, started)


SUBPROCESS_SUITES = ("tests/test_activation.py", "tests/test_startup.py", "tests/test_coexistence.py")


def suite_args(*, full: bool) -> List[str]:
    """pytest selection for our suite: the whole of it, or without the slow and the release-independent suites."""
    args: List[str] = []
    if not full:
        args += ["-m", "not slow", *(f"--ignore={suite}" for suite in SUBPROCESS_SUITES if (ROOT / suite).exists())]
    return args


# --- lint and package ----------------------------------------------------------------------------------------------


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy --strict on the package and the tests' child programs."""
    session.install("ruff", "mypy", f"aiohttp=={LINT_RELEASE}", "-e", str(ROOT))
    failures = []
    # tests/children import tests/support.py: followed for its types, not checked (it is not --strict clean).
    children = ["mypy", "--strict", "--follow-imports=silent", "tests/children", "tests/childproc.py"]
    for cmd in (
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "--strict", "aiohttp_waiterfix"],
        children,
    ):
        # Run them all, then fail: one report shows every problem.
        try:
            session.run(*cmd)
        except CommandFailed:
            failures.append(" ".join(cmd))
    if failures:
        session.error(f"failed: {'; '.join(failures)}")


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
        "assert (pkg / 'fixes' / 'waiters.py').exists() and (pkg / '_probe.py').exists(); "
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


# --- our tests -----------------------------------------------------------------------------------------------------

TEST_RUNS: List[object] = [
    *release_params(plan.REPRESENTATIVE),
    # The oldest and the newest Python, each on a release that needs every fix it can have there.
    *([nox.param(plan.PYTHONS["3.8"], "3.10.10", id="python='3.8', aiohttp='3.10.10'")] if plan.PYTHONS["3.8"] else []),
    *(
        [nox.param(plan.PYTHONS["3.13"], "3.10.10", id="python='3.13', aiohttp='3.10.10'")]
        if plan.PYTHONS["3.13"]
        else []
    ),
]


@nox.session
@nox.parametrize(("python", "aiohttp"), TEST_RUNS)
def tests(session: nox.Session, aiohttp: str) -> None:
    """Our test suite (tests/, without tests/conformance) on one aiohttp release."""
    install(session, aiohttp, *TEST_DEPS)
    full = aiohttp in plan.FULL_SUITE or os.environ.get("WAITERFIX_TESTS_FULL") == "1"
    run_suite(session, aiohttp, "wheel" if full else "wheel-reduced", suite_args(full=full), {})


# --- conformance: the fixing releases' own tests --------------------------------------------------------------------


def run_conformance(session: nox.Session, fix_id: str, release: str, *, patched: bool) -> Path:
    """Run the fix's upstream tests against ``release``; return the junit xml path."""
    fix = next(fix for fix in plan.FIXES if fix.id == fix_id)
    fix_dir = plan.CONFORMANCE_DIR / fix.module
    source = plan.conformance_source(fix)
    session.run(
        sys.executable, str(plan.CONFORMANCE_DIR / "fetch_upstream.py"), str(fix_dir), external=True, silent=True
    )
    install(session, release, *source.DEPS)
    # Upstream's unix_sockname fixture puts the socket under $TMPDIR, which nox points into the checkout; a deep
    # checkout makes the path longer than AF_UNIX allows.  The system temp dir is short.
    env = {"AIOHTTP_WAITERFIX": "1" if patched else "0", "TMPDIR": tempfile.gettempdir()}
    applied_fixes(session, release, env)
    junit = (
        Path(session.create_tmp()) / f"conformance-{fix.module}-{release}-{'patched' if patched else 'unpatched'}.xml"
    )
    junit.unlink(missing_ok=True)
    # Unpatched, failures are the expected outcome (the caller checks which): no per-test failure report.
    report = ["-rfE"] if patched else ["-rN", "--tb=no"]
    tests = [str(fix_dir / "upstream" / name) for name in source.TESTS]
    session.run(
        "pytest", "-p", "no:cacheprovider", "--confcutdir", str(fix_dir), "-q", *report, f"--junitxml={junit}",
        *tests, *session.posargs, env=env, success_codes=[0] if patched else [0, 1],
    )  # fmt: skip
    return junit


def conformance_params(everything: bool = False) -> List[object]:
    return [
        param
        for fix in plan.conformance_fixes()
        for param in release_params(plan.conformance_releases(fix, everything), fix.id)
    ]


@nox.session
@nox.parametrize(("python", "fix", "aiohttp"), conformance_params())
def conformance(session: nox.Session, fix: str, aiohttp: str) -> None:
    """The fixing release's own tests against a patched older release (tests/conformance/<fix>)."""
    run_conformance(session, fix, aiohttp, patched=True)


@nox.session
@nox.parametrize(("python", "fix", "aiohttp"), conformance_params(everything=True))
def conformance_all(session: nox.Session, fix: str, aiohttp: str) -> None:
    """Like conformance, on every release each fix is declared for."""
    run_conformance(session, fix, aiohttp, patched=True)


@nox.session
@nox.parametrize(
    ("python", "fix", "aiohttp"),
    [
        param
        for fix in plan.conformance_fixes()
        for param in release_params(sorted({fix.first_affected, fix.last_affected}, key=plan.key), fix.id)
    ],
)
def conformance_unpatched(session: nox.Session, fix: str, aiohttp: str) -> None:
    """The conformance run means something: unpatched, exactly the upstream tests of the fix fail."""
    module = next(f.module for f in plan.FIXES if f.id == fix)
    fix_tests = plan.load(f"_fix_tests_{module}", plan.CONFORMANCE_DIR / module / "fix_tests.py").FIX_TESTS
    results = plan.junit_results(run_conformance(session, fix, aiohttp, patched=False))
    failed = {name.rsplit("::", 1)[1] for name, outcome, _ in results if outcome in ("failed", "error")}
    session.log(f"unpatched aiohttp {aiohttp}: {len(failed)} of {len(results)} upstream tests fail")
    problems = [f"fails but is not a test of the fix: {name}" for name in sorted(failed - fix_tests)]
    problems += [f"test of the fix passes unpatched: {name}" for name in sorted(fix_tests - failed)]
    if not failed or problems:
        session.error("\n".join(problems or ["no upstream test failed unpatched: the conformance run proves nothing"]))


# --- prove_failing -------------------------------------------------------------------------------------------------


@nox.session
@nox.parametrize(("python", "aiohttp"), release_params(sorted(plan.PROOFS, key=plan.key)))
def prove_failing(session: nox.Session, aiohttp: str) -> None:
    """Each fix's `fix` tests fail unpatched; its `improvement` tests fail unpatched and where upstream fixed it."""
    install(session, aiohttp, *TEST_DEPS)
    env = {"AIOHTTP_WAITERFIX": "0"}
    applied_fixes(session, aiohttp, env)
    problems = []
    for marker, fix_id in plan.PROOFS[aiohttp]:
        junit = Path(session.create_tmp()) / f"prove-{marker}-{fix_id}.xml"
        junit.unlink(missing_ok=True)
        session.run(
            # Failing is the expected outcome here: no per-test failure report (-rN), the log below says what failed.
            "pytest", "-p", "no:cacheprovider", "-q", "--tb=no", "-rN", "-m", marker, "--fix-id", fix_id,
            f"--junitxml={junit}", *session.posargs,
            env=env, success_codes=[0, 1, 5],  # failures are what we want; 5 = no tests selected, judged below
        )  # fmt: skip
        results = [r for r in plan.junit_results(junit) if r[1] != "skipped" or marker == "fix"]
        if not results:
            if marker == "fix":
                problems.append(f"-m fix --fix-id {fix_id}: no tests selected (does the fix have no tests?)")
            continue
        session.log(f"-m {marker} --fix-id {fix_id} on unpatched aiohttp {aiohttp}: {len(results)} tests")
        for name, outcome, message in results:
            # Only a failure in the test itself proves something; a setup error or a skip does not.
            verdict = "ok, fails unpatched" if outcome == "failed" else f"BAD: {outcome}"
            session.log(f"  {verdict:<19} {name}  {message}")
            if outcome != "failed":
                problems.append(f"-m {marker} --fix-id {fix_id}: {name} {outcome} on unpatched aiohttp {aiohttp}")
    if problems:
        session.error("\n".join(problems))


# --- coexistence ---------------------------------------------------------------------------------------------------

# Pinned as tested together (Python 3.11, aiohttp 3.10.10); see tests/test_coexistence.py.
COEXISTENCE_DEPS = (
    "opentelemetry-sdk==1.45.1",
    "opentelemetry-instrumentation-aiohttp-client==0.66b1",
    "ddtrace==4.16.0",
)


@nox.session(python=DEFAULT_PYTHON)
def coexistence(session: nox.Session) -> None:
    """With OpenTelemetry's and ddtrace's aiohttp instrumentation active too: still fixed, their spans intact."""
    install(session, "3.10.10", "pytest", *COEXISTENCE_DEPS)
    # -p no:ddtrace: ddtrace's own pytest plugin would try to reach a local trace agent.
    session.run(
        "pytest", "-p", "no:ddtrace", "-p", "no:cacheprovider", "-q", "tests/test_coexistence.py", *session.posargs
    )


# --- not in the default run ----------------------------------------------------------------------------------------


def _matrix_runs() -> List[object]:
    """Every release our suite runs on x every Python it installs on; the whole suite on the release's own Python.

    On the other Pythons the suite runs without the slow and the release-independent start-up suites
    ("-reduced"): those test our start-up code, which does not change with the release, and would
    multiply the matrix's time by four.
    """
    runs: List[object] = []
    for minor, python in plan.PYTHONS.items():
        if python is None:
            continue
        for release in plan.SUITE_RELEASES:
            if (release, minor) in plan.MATRIX_LEFT_OUT:
                continue
            # No wheel for that pair: build the sdist without its C extensions.
            variant = "wheel" if plan.has_wheel(release, minor) else "sdist-pure-python"
            if plan.python_for(release)[0] != minor:
                variant += "-reduced"
            label = f"python='{minor}', aiohttp='{release}'" + ("" if variant == "wheel" else f", {variant}")
            runs.append(nox.param(python, release, variant, id=label))
    for variant in ("pure-python", "uvloop"):
        runs.append(nox.param(DEFAULT_PYTHON, "3.10.10", variant, id=f"python='3.11', aiohttp='3.10.10', {variant}"))
    return runs


@nox.session
@nox.parametrize(("python", "aiohttp", "variant"), _matrix_runs())
def matrix(session: nox.Session, aiohttp: str, variant: str) -> None:
    """Our tests on every release that needs a fix, the fixing ones and the newest x every Python 3.8-3.13.

    Plus pure-Python and uvloop runs.  Each run leaves a record; `nox -s compat_table` makes the README's table.
    """
    env: Dict[str, str] = {}
    full = not variant.endswith("-reduced")
    if variant.startswith("sdist-pure-python"):
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
    run_suite(session, aiohttp, variant, suite_args(full=full), env)


@nox.session(venv_backend="none")
def compat_table(session: nox.Session) -> None:
    """README's compatibility table from the runs' records (.nox/_results, or the directories given after --)."""
    session.run(sys.executable, str(ROOT / "tools" / "compat_table.py"), *session.posargs, external=True)


@nox.session(venv_backend="none")
def fingerprints(session: nox.Session) -> None:
    """Recompute every recorded fingerprint from the sdists with every Python 3.8-3.13: all must match the table."""
    session.run(sys.executable, str(ROOT / "tools" / "make_fingerprints.py"), "--check", external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """benchmarks/run_all.py on Python 3.11; the benchmarks build their own environments with uv."""
    session.run(DEFAULT_PYTHON, str(ROOT / "benchmarks" / "run_all.py"), *session.posargs, external=True)


@nox.session(python=DEFAULT_PYTHON)
def soak(session: nox.Session) -> None:
    """benchmarks/soak.py with aiohttp 3.10.10 and the package."""
    install(session, "3.10.10")
    applied_fixes(session, "3.10.10")
    session.run("python", str(ROOT / "benchmarks" / "soak.py"), *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
@nox.parametrize("aiohttp", ["3.9.5", "3.10.10", "3.10.11"])
def randomized(session: nox.Session, aiohttp: str) -> None:
    """The hypothesis harness with many examples (HYPOTHESIS_PROFILE=many)."""
    install(session, aiohttp, *TEST_DEPS)
    applied_fixes(session, aiohttp)
    session.run(
        "pytest", "-p", "no:cacheprovider", "-q", *suite_args(full=True), "tests/test_randomized.py",
        *session.posargs, env={"HYPOTHESIS_PROFILE": "many"},
    )  # fmt: skip
