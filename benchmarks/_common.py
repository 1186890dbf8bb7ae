"""Shared machinery for the benchmarks: environments, interleaved runs, tables, goals.

The drivers (``bench_*.py`` run by ``run_all.py``) use only the standard
library and run on any Python 3.8+.  The measured code runs in separate
virtual environments, built here with ``uv`` from the package index:

* ``aiohttp-3.10.10`` -- aiohttp 3.10.10 + aiohttp-waiterfix; run with
  ``AIOHTTP_WAITERFIX=0`` it is the unpatched release, without it the patched one;
* ``aiohttp-3.9.5``   -- aiohttp 3.9.5 + aiohttp-waiterfix (patched);
* ``aiohttp-3.10.11`` -- the upstream fix + aiohttp-waiterfix (which leaves it alone);
* ``plot``            -- matplotlib only, for docs/recovery.png.

aiohttp-waiterfix is installed from this checkout as a regular (non-editable)
wheel, rebuilt on every run, so the start-up numbers are those of a real
installation and the connector numbers are those of the current source.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"
VENV_ROOT = Path(os.environ.get("WAITERFIX_BENCH_VENVS", str(BENCH_DIR / ".venvs")))
PYTHON_VERSION = "3.11"
"""The interpreter every benchmark environment uses (one version: differences are aiohttp's and ours)."""

KILL_SWITCH = "AIOHTTP_WAITERFIX"
SKIP_VAR = "AIOHTTP_WAITERFIX_SKIP"


@dataclass(frozen=True)
class Env:
    """One measured configuration: a virtual environment plus the kill switch setting."""

    name: str
    """Short key used in results (``patched-3.10.10``)."""
    label: str
    """Human label used in tables and the plot."""
    venv: str
    """Directory name under ``VENV_ROOT``."""
    aiohttp: str
    patched: bool
    """True: the patch must be applied in this env (checked by every worker)."""
    disabled: bool = False
    """True: run with ``AIOHTTP_WAITERFIX=0`` (the unpatched release)."""
    skip: str = ""
    """Fix ids to leave out (``AIOHTTP_WAITERFIX_SKIP``): a reference that keeps one fix's code as released."""

    @property
    def python(self) -> str:
        return str(VENV_ROOT / self.venv / "bin" / "python")

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        dropped = ("PYTHONPATH", "PYTHONHOME", KILL_SWITCH, SKIP_VAR)
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.disabled:
            env[KILL_SWITCH] = "0"
        if self.skip:
            env[SKIP_VAR] = self.skip
        env.update(extra or {})
        return env


UNPATCHED = Env("unpatched-3.10.10", "3.10.10 unpatched", "aiohttp-3.10.10", "3.10.10", False, disabled=True)
PATCHED = Env("patched-3.10.10", "3.10.10 patched", "aiohttp-3.10.10", "3.10.10", True)
PATCHED_395 = Env("patched-3.9.5", "3.9.5 patched", "aiohttp-3.9.5", "3.9.5", True)
# Upstream's own code: 3.10.11 still gets paused-eof, dns-trace and sni-key from us, so they are switched off here.
UPSTREAM = Env("upstream-3.10.11", "3.10.11 upstream", "aiohttp-3.10.11", "3.10.11", False, disabled=True)
ALL_ENVS = (UNPATCHED, PATCHED, PATCHED_395, UPSTREAM)
# The read path (bench_read_path.py): the cost of paused-eof alone, on 3.10.10 (every other fix on) and on 3.11.10.
WITHOUT_PAUSED_EOF = Env(
    "without-paused-eof-3.10.10", "3.10.10 without paused-eof", "aiohttp-3.10.10", "3.10.10", False, skip="paused-eof"
)
UNPATCHED_31110 = Env("unpatched-3.11.10", "3.11.10 unpatched", "aiohttp-3.11.10", "3.11.10", False, disabled=True)
PATCHED_31110 = Env("patched-3.11.10", "3.11.10 patched", "aiohttp-3.11.10", "3.11.10", True)

# The upstream env has the shim installed (the scenario module lives in it) and switched off.

PLOT_VENV = "plot"
PLOT_REQUIREMENTS = ("matplotlib",)

_prepared: Dict[str, str] = {}


# --------------------------------------------------------------------------- environments


def _uv() -> List[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


def base_python() -> str:
    """The interpreter the venvs are built from: $WAITERFIX_BENCH_PYTHON, pyenv's 3.11, or this one."""
    explicit = os.environ.get("WAITERFIX_BENCH_PYTHON")
    if explicit:
        return explicit
    sys.path.insert(0, str(REPO / "tools"))
    from pythons import find_python  # the one interpreter lookup of the noxfile, benchmarks and tools

    return find_python(PYTHON_VERSION) or sys.executable


def _run_quiet(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")


def ensure_venv(venv: str, requirements: Sequence[str], with_shim: bool = True) -> str:
    """Create (or reuse) ``VENV_ROOT/venv`` with ``requirements``; (re)install the shim from this checkout."""
    if venv in _prepared:
        return _prepared[venv]
    path = VENV_ROOT / venv
    python = path / "bin" / "python"
    interpreter = base_python()
    stamp = path / ".bench-stamp"
    wanted = json.dumps(
        {"python": interpreter, "requirements": list(requirements), "shim": with_shim, "bytecode": True}
    )
    uv = _uv()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        started = time.monotonic()
        print(f"  [env] building {path} ({', '.join(requirements)})", flush=True)
        if path.exists():
            shutil.rmtree(path)
        _run_quiet([*uv, "venv", "-q", "-p", interpreter, str(path)])
        # --compile-bytecode: as pip does by default; without .pyc files every
        # process would compile aiohttp from source (PYTHONDONTWRITEBYTECODE is set here).
        _run_quiet([*uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python), *requirements])
        stamp.write_text(wanted)
        print(f"  [env] {venv} ready in {time.monotonic() - started:.1f}s", flush=True)
    if with_shim:
        # A wheel, not an editable install: an editable finder would be imported
        # by every interpreter start and blur the start-up numbers.  uv caches
        # local builds by pyproject/setup.cfg only, hence the explicit refresh.
        _run_quiet(
            [
                *uv,
                "pip",
                "install",
                "-q",
                "--compile-bytecode",
                "--python",
                str(python),
                "--reinstall-package",
                "aiohttp-waiterfix",
                "--refresh-package",
                "aiohttp-waiterfix",
                str(REPO),
            ]
        )
        _check_shim_is_current(str(python))
    _prepared[venv] = str(python)
    return str(python)


def _check_shim_is_current(python: str) -> None:
    code = "import os, aiohttp_waiterfix as m; print(os.path.dirname(m.__file__))"
    proc = subprocess.run(
        [python, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, KILL_SWITCH: "0"}, check=True
    )
    installed = Path(proc.stdout.strip())
    for source in (REPO / "aiohttp_waiterfix").glob("*.py"):
        copy = installed / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            raise SystemExit(
                f"installed aiohttp_waiterfix in {installed} is stale ({source.name}); remove {VENV_ROOT} and run again"
            )


def prepare(envs: Iterable[Env]) -> None:
    for env in envs:
        ensure_venv(env.venv, [f"aiohttp=={env.aiohttp}"])


def plot_python() -> str:
    return ensure_venv(PLOT_VENV, list(PLOT_REQUIREMENTS), with_shim=False)


# --------------------------------------------------------------------------- running workers


class WorkerFailed(RuntimeError):
    pass


def run_worker(
    env: Env, script: Path, args: Sequence[str], timeout: float, extra_env: Optional[Dict[str, str]] = None
) -> Dict[str, Any]:
    """Run ``script --worker args`` in ``env``; return the JSON object it prints last."""
    return run_json(env, [str(script), "--worker", *args], timeout, extra_env)


def run_json(
    env: Env, args: Sequence[str], timeout: float, extra_env: Optional[Dict[str, str]] = None
) -> Dict[str, Any]:
    """Run ``python args`` in ``env``; return the JSON object it prints last.

    Every worker reports the aiohttp version and whether the patch is applied;
    a mismatch with the environment's expectation makes the numbers
    meaningless, so it is an error here, not a footnote.
    """
    cmd = [env.python, *args]
    what = " ".join(Path(a).name if a.endswith(".py") else a for a in args[:4])
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env.environ(extra_env), cwd=str(BENCH_DIR)
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkerFailed(f"{env.name}: {what} exceeded {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise WorkerFailed(f"{env.name}: {what} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise WorkerFailed(f"{env.name}: {what} printed no JSON\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    data: Dict[str, Any] = json.loads(lines[-1])
    check_env(env, data.get("aiohttp_version"), data.get("applied"))
    return data


def check_env(env: Env, version: Optional[str], applied: Optional[bool]) -> None:
    if version != env.aiohttp or bool(applied) != env.patched:
        raise WorkerFailed(
            f"{env.name}: expected aiohttp {env.aiohttp} with patch applied={env.patched}, "
            f"got aiohttp {version} applied={applied}"
        )


def interleaved(envs: Sequence[Env], rounds: int) -> Iterator[Tuple[int, Env]]:
    """A B C, B C A, C A B, ...: every env runs once per round, each in every position.

    Interleaving spreads slow drift of this shared 2-core machine (thermal,
    other tenants) over all environments; rotating the order also spreads
    "first run after a pause" effects.
    """
    for round_no in range(rounds):
        shift = round_no % len(envs)
        for env in (*envs[shift:], *envs[:shift]):
            yield round_no, env


def worker_status() -> Dict[str, Any]:
    """Inside a worker: which aiohttp and whether the patch is applied (imports aiohttp)."""
    import aiohttp

    import aiohttp_waiterfix
    from aiohttp_waiterfix._startup import requested_skips, switched_off

    status = aiohttp_waiterfix.status()
    skipped = set(requested_skips())
    return {
        "aiohttp_version": aiohttp.__version__,
        "applied": status.applied,
        "applied_fixes": [fix.id for fix in status.fixes if fix.applied],
        # what this environment asks for: every fix the release needs, less the skipped ones (none if switched off)
        "expected_fixes": [] if switched_off() else [f.id for f in status.fixes if f.affected and f.id not in skipped],
    }


def emit(data: Dict[str, Any]) -> None:
    """Inside a worker: print the result line the driver parses."""
    print(json.dumps(data), flush=True)


# --------------------------------------------------------------------------- instruction counts


def callgrind_available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def callgrind_control(*args: str) -> None:
    """Inside a worker running under callgrind: send it a command (on/off, zero, dump)."""
    subprocess.run(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL, check=True, timeout=120)


def callgrind_dumps(env: Env, script: Path, args: Sequence[str], timeout: float = 600) -> Optional[List[int]]:
    """Run ``script --worker args`` in ``env`` under callgrind; return the instruction total of each dump.

    The worker starts uninstrumented (``--instr-atstart=no``, so start-up and
    imports cost little), switches instrumentation on around what it measures
    and dumps after each measured segment (``callgrind_control``).  Returns
    None when valgrind is missing or the run fails: the counts are optional.
    """
    if not callgrind_available():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--quiet",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            env.python,
            str(script),
            "--worker",
            *args,
        ]
        try:
            proc = subprocess.run(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env.environ(),
                timeout=timeout,
                cwd=str(BENCH_DIR),
            )
        except subprocess.TimeoutExpired:
            print(f"    callgrind timed out for {env.name}")
            return None
        if proc.returncode != 0:
            print(f"    callgrind failed for {env.name}: {proc.stderr[-500:]}")
            return None
        totals = []
        for part in sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:])):
            total = next(
                (line.split()[1] for line in part.read_text().splitlines() if line.startswith("totals:")), None
            )
            if total is None:
                return None
            totals.append(int(total))
        return totals


def in_parallel(jobs: Dict[str, Callable[[], Any]], workers: int = 2) -> Dict[str, Any]:
    """Run independent jobs two at a time (callgrind counts do not care about contention)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


# --------------------------------------------------------------------------- reporting


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return "-" if value is None else str(value)


@dataclass
class Goal:
    """One goal: ``value`` must be on the good side of ``target``; failing needs ``fail_at``.

    Between the two the goal counts as *missed within noise*: reported, but it
    does not fail the run (this machine's run-to-run noise is a few percent).
    """

    name: str
    value: float
    target: float
    fail_at: float
    higher_is_better: bool = False
    unit: str = ""
    not_confirmed: str = ""
    """Set when a noise-free measurement contradicts a timing miss: a FAIL is then reported as NOISE."""

    def _meets(self, bound: float) -> bool:
        return self.value >= bound if self.higher_is_better else self.value <= bound

    @property
    def verdict(self) -> str:
        if self._meets(self.target):
            return "PASS"
        if self._meets(self.fail_at) or self.not_confirmed:
            return "NOISE"
        return "FAIL"

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (
            f"[{self.verdict}] {self.name}: {_fmt(self.value)}{self.unit} "
            f"(goal {sign} {_fmt(self.target)}{self.unit}, fails beyond {_fmt(self.fail_at)}{self.unit})"
            + (f"; not a FAIL: {self.not_confirmed}" if self.not_confirmed and not self._meets(self.fail_at) else "")
        )

    def as_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "fail_at": self.fail_at,
            "higher_is_better": self.higher_is_better,
            "verdict": self.verdict,
        }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def save_section(section: str, data: Dict[str, Any]) -> None:
    """Replace one benchmark's section of results/latest.json (the others are kept)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        everything = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        everything = {}
    everything[section] = data
    everything["machine"] = machine_info()
    RESULTS.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")


def machine_info() -> Dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": base_python(),
        "git_head": commit,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --------------------------------------------------------------------------- shared by the workers


def fake_connector_class() -> Tuple[Any, Any, List[Any]]:
    """(Connector class, request, protocols created) for no-I/O connector benchmarks (inside a venv).

    The connector's ``_create_connection`` returns a stand-in for a healthy
    ResponseHandler (connected, not ``should_close``), so acquire/release cycles
    exercise only the slot and pool logic.
    """
    import asyncio
    from types import SimpleNamespace

    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import BaseConnector
    from yarl import URL

    class FakeProtocol:
        should_close = False
        transport = None
        closed = None  # ResponseHandler.closed: nothing to await (3.12+ connectors await it when set)
        was_closed = False

        def is_connected(self) -> bool:
            return True

        def close(self) -> None:
            self.was_closed = True

    created: List[FakeProtocol] = []

    class Connector(BaseConnector):  # type: ignore[misc]
        async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
            created.append(FakeProtocol())
            return created[-1]

    loop = asyncio.get_running_loop()
    key = ClientRequest("GET", URL("http://127.0.0.1:8080/"), loop=loop).connection_key
    return Connector, SimpleNamespace(connection_key=key), created


def bench_main(
    run: Callable[[], Dict[str, Any]],
    worker: Optional[Callable[[List[str]], None]] = None,
    argv: Optional[List[str]] = None,
) -> int:
    """A benchmark script's entry point: ``--worker ARGS`` runs inside an environment, else the whole benchmark.

    Exits 1 when a goal is FAILed (NOISE does not fail).
    """
    argv = sys.argv[1:] if argv is None else argv
    if worker is not None and argv and argv[0] == "--worker":
        worker(argv[1:])
        return 0
    result = run()
    return 1 if any(g["verdict"] == "FAIL" for g in result["goals"]) else 0
