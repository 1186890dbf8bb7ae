"""Benchmark 4: start-up cost of the shim.

Interpreter starts, all in the aiohttp 3.10.10 environment with the shim
installed as a wheel, interleaved one after another (A B C A B C ...):

* ``bare``          -- ``python -c pass``
* ``import``        -- ``python -c "import aiohttp_waiterfix"`` (aiohttp is *not* imported: checked)
* ``sitecustomize`` -- ``python -c pass`` with a ``sitecustomize.py`` on PYTHONPATH that does
  ``import aiohttp_waiterfix; aiohttp_waiterfix.activate("sitecustomize")`` in try/except.

Every variant gets a PYTHONPATH entry (an empty directory for the first two)
so that the path search costs the same.  The statistic is the median over
>= 50 runs of the child's CPU time (user + sys from ``wait4``); wall time is
reported too, but on this shared 2-core machine it mostly measures waiting
for a core.  Goal: median(variant) - median(bare) <= 5 ms for ``import`` and
``sitecustomize``; fails beyond 6.5 ms (the medians of 60 runs move by well
under 1 ms between runs here).

And what applying the fixes adds to the application's ``import aiohttp``
(wrapt, packaging, the registry, the fingerprint checks, the patching): the
child imports aiohttp with ``AIOHTTP_WAITERFIX=0``, then times
``aiohttp_waiterfix.apply()`` with ``time.process_time()`` (the median over
``aiohttp_runs`` children).  Measured inside the child because the whole
``import aiohttp`` (~300 ms) varies by more than the ~20 ms we look for.  The
same is measured, interleaved, for aiohttp-waiterfix 0.1.0 (commit
``REFERENCE_COMMIT``, the single waiter patch, built from git), because this
machine's speed drifts by half between runs: the goal is that applying every
fix costs no more than 0.1.0 did (<= 1.00x, fails beyond 1.15x); the absolute
milliseconds are for the record (issue 11 aimed at <= 20 ms).  Also for the
record: ``import aiohttp`` with and without the shim imported first, and
``-X importtime`` breakdowns of both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PATCHED,
    REPO,
    Goal,
    bench_main,
    check_env,
    ensure_venv,
    median,
    prepare,
    save_section,
    table,
)

ENV = PATCHED
GOAL_MS = 5.0
FAIL_MS = 6.5
REFERENCE_COMMIT = "a50cbae"
"""aiohttp-waiterfix 0.1.0: the one waiter patch, before the fix registry."""
REFERENCE_VENV = "aiohttp-3.10.10-waiterfix-0.1.0"
APPLY_CHILD = """
import os, time
os.environ["AIOHTTP_WAITERFIX"] = "0"
import aiohttp_waiterfix, aiohttp
started = time.process_time()
status = aiohttp_waiterfix.apply()
elapsed = (time.process_time() - started) * 1e3
assert status.applied, status
print(elapsed)
"""
SITECUSTOMIZE = """\
try:
    import aiohttp_waiterfix

    aiohttp_waiterfix.activate("sitecustomize")
except Exception:
    pass
"""
SHIM_PREFIXES = ("aiohttp_waiterfix", "wrapt", "packaging")


def _timed(cmd: Sequence[str], env: Dict[str, str]) -> Tuple[float, float]:
    """Run once; return (wall ms, child CPU ms)."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1e3
    proc.returncode = status  # reaped here: keep Popen from waiting for it again
    if status:
        _output(cmd, env)  # raises with the child's output
        raise RuntimeError(f"{' '.join(cmd)} failed once (status {status})")
    return wall, (usage.ru_utime + usage.ru_stime) * 1e3


def _output(cmd: Sequence[str], env: Dict[str, str]) -> str:
    return subprocess.run(
        list(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True
    ).stdout


def _importtime(cmd: Sequence[str], env: Dict[str, str], runs: int = 5) -> List[Tuple[int, str, int, int]]:
    """Parse ``-X importtime``: (depth, module, self us, cumulative us), min over runs per module."""
    best: Dict[str, List[int]] = {}
    order: List[Tuple[int, str]] = []
    for run_no in range(runs):
        err = subprocess.run(
            list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True
        ).stderr
        for line in err.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative_us, name = line[len("import time:") :].split("|")
            module = name.strip()
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            if run_no == 0:
                order.append((depth, module))
            prev = best.get(module)
            cur = [int(self_us), int(cumulative_us)]
            best[module] = cur if prev is None else [min(prev[0], cur[0]), min(prev[1], cur[1])]
    return [(depth, module, *best[module]) for depth, module in order if module in best]


def _subtree(entries: List[Tuple[int, str, int, int]], module: str) -> List[Tuple[str, int, int]]:
    """``module`` and what it imported: the entries just before it that are nested deeper."""
    for i, (depth, name, self_us, cumulative) in enumerate(entries):
        if name == module:
            out = [(name, self_us, cumulative)]
            for d, m, s, c in reversed(entries[:i]):
                if d <= depth:
                    break
                out.append((m, s, c))
            return out
    return []


def _shim_subtrees(entries: List[Tuple[int, str, int, int]]) -> List[Tuple[str, int]]:
    """Top-most entries belonging to the shim or its dependencies, with their cumulative us."""
    out = []
    # importtime lists children before their parent; walk from the end to see parents first
    stack: List[Tuple[int, bool]] = []
    for depth, module, _self_us, cumulative in reversed(entries):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inside = any(flag for _, flag in stack)
        ours = module.split(".")[0] in SHIM_PREFIXES
        if ours and not inside:
            out.append((module, cumulative))
        stack.append((depth, ours or inside))
    return list(reversed(out))


def reference_python() -> str:
    """A venv with aiohttp 3.10.10 and aiohttp-waiterfix 0.1.0, exported from this repository's history."""
    source = BENCH_DIR / ".venvs" / f"source-{REFERENCE_COMMIT}"
    if not (source / "setup.cfg").exists():
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", REFERENCE_COMMIT], check=True, stdout=subprocess.PIPE
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return ensure_venv(REFERENCE_VENV, ["aiohttp==3.10.10", str(source)], with_shim=False)


def run(runs: int = 60, aiohttp_runs: int = 30) -> Dict[str, Any]:
    prepare([ENV])
    python = ENV.python
    reference = reference_python()
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as boot:
        Path(boot, "sitecustomize.py").write_text(SITECUSTOMIZE)
        # as after its first import in a real site-packages: the .pyc exists
        subprocess.run([python, "-m", "compileall", "-q", boot], check=True)
        plain = ENV.environ({"PYTHONPATH": empty})
        site = ENV.environ({"PYTHONPATH": boot})
        variants = {
            "bare": ([python, "-c", "pass"], plain),
            "import": ([python, "-c", "import aiohttp_waiterfix"], plain),
            "sitecustomize": ([python, "-c", "pass"], site),
        }
        info_variants = {
            "import aiohttp": ([python, "-c", "import aiohttp"], plain),
            "import aiohttp_waiterfix, aiohttp (patched)": ([python, "-c", "import aiohttp_waiterfix, aiohttp"], plain),
        }

        # Untimed checks: the start-up paths must not import aiohttp (nor wrapt), and must work.
        probe = (
            "import sys, aiohttp_waiterfix as w; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'wrapt', 'typing'))); "
            "print(w.status().activated_by)"
        )
        imported = _output([python, "-c", probe], plain).splitlines()
        via_site = _output([python, "-c", probe], site).splitlines()
        for label, lines in (("import", imported), ("sitecustomize", via_site)):
            if lines[0] != "[]":
                raise SystemExit(f"startup: the {label} path imported {lines[0]}; it must import none of these")
        if via_site[1] != "sitecustomize":
            raise SystemExit(f"startup: sitecustomize activation not recorded (activated_by={via_site[1]})")
        applied = _output(
            [
                python,
                "-c",
                "import aiohttp, aiohttp_waiterfix as w; s = w.status(); "
                "print(aiohttp.__version__, s.applied, s.activated_by)",
            ],
            site,
        ).split()
        check_env(ENV, applied[0], applied[1] == "True")
        new_modules = _output(
            [
                python,
                "-c",
                "import sys; a = set(sys.modules); import aiohttp_waiterfix; "
                "print(' '.join(sorted(set(sys.modules) - a)))",
            ],
            plain,
        ).split()

        print(
            f"startup: {runs} interleaved runs of each of {', '.join(variants)}; "
            f"{aiohttp_runs} of each 'import aiohttp' variant (child CPU time, median)"
        )
        wall: Dict[str, List[float]] = {name: [] for name in (*variants, *info_variants)}
        cpu: Dict[str, List[float]] = {name: [] for name in (*variants, *info_variants)}
        for _ in range(3):  # warm the page cache
            for cmd, env in variants.values():
                _timed(cmd, env)
        for i in range(runs):
            names = list(variants)
            names = names[i % len(names) :] + names[: i % len(names)]
            for name in names:
                w, c = _timed(*variants[name])
                wall[name].append(w)
                cpu[name].append(c)
            if i < aiohttp_runs:
                for name in list(info_variants) if i % 2 else list(info_variants)[::-1]:
                    w, c = _timed(*info_variants[name])
                    wall[name].append(w)
                    cpu[name].append(c)

        apply_ms: List[float] = []
        reference_ms: List[float] = []
        for i in range(aiohttp_runs):
            pair = [(python, apply_ms), (reference, reference_ms)]
            for exe, out in pair if i % 2 else pair[::-1]:
                out.append(float(_output([exe, "-c", APPLY_CHILD], plain)))
        importtime_import = _importtime([python, "-X", "importtime", "-c", "import aiohttp_waiterfix"], plain)
        importtime_site = _importtime([python, "-X", "importtime", "-c", "pass"], site)
        importtime_apply = _importtime([python, "-X", "importtime", "-c", "import aiohttp_waiterfix, aiohttp"], plain)

    base_cpu, base_wall = median(cpu["bare"]), median(wall["bare"])
    rows = []
    for name in variants:
        rows.append(
            [
                name,
                median(cpu[name]),
                median(cpu[name]) - base_cpu,
                median(wall[name]),
                median(wall[name]) - base_wall,
                len(cpu[name]),
            ]
        )
    ref = "import aiohttp"
    for name in info_variants:
        rows.append(
            [
                name,
                median(cpu[name]),
                median(cpu[name]) - median(cpu[ref]),
                median(wall[name]),
                median(wall[name]) - median(wall[ref]),
                len(cpu[name]),
            ]
        )
    headers = ["variant", "CPU ms (median)", "+ms vs baseline", "wall ms (median)", "+ms wall", "runs"]
    print()
    print(table(headers, rows))
    print("  (baseline: 'bare' for the first three, 'import aiohttp' for the last)")

    def depth0(entries: List[Tuple[int, str, int, int]], module: str) -> Optional[int]:
        return next((cum for depth, m, _s, cum in entries if m == module), None)

    pkg_us = depth0(importtime_import, "aiohttp_waiterfix")
    site_us = depth0(importtime_site, "sitecustomize")
    subtree = _subtree(importtime_import, "aiohttp_waiterfix")
    apply_parts = _shim_subtrees(importtime_apply)
    print(
        f"  -X importtime: aiohttp_waiterfix {pkg_us} us cumulative (self times: "
        + ", ".join(f"{m} {s}" for m, s, _c in subtree)
        + f"); sitecustomize {site_us} us"
    )
    print(f"  modules new in sys.modules after 'import aiohttp_waiterfix': {' '.join(new_modules) or 'none'}")
    print(
        "  -X importtime at 'import aiohttp' (patched), the shim's part: "
        + ", ".join(f"{m} {c} us" for m, c in apply_parts)
        + f" = {sum(c for _, c in apply_parts)} us"
    )

    print(
        f"  applying every fix at 'import aiohttp': {median(apply_ms):.1f} ms CPU; aiohttp-waiterfix 0.1.0's one "
        f"fix: {median(reference_ms):.1f} ms (medians of {len(apply_ms)}, interleaved)"
    )
    goals = [
        Goal(
            "startup: applying every fix / applying 0.1.0's (CPU, same run)",
            median(apply_ms) / median(reference_ms),
            1.0,
            1.15,
            unit="x",
        ),
        Goal(
            "startup: import aiohttp_waiterfix (CPU ms over bare start)",
            median(cpu["import"]) - base_cpu,
            GOAL_MS,
            FAIL_MS,
            unit=" ms",
        ),
        Goal(
            "startup: sitecustomize activation (CPU ms over bare start)",
            median(cpu["sitecustomize"]) - base_cpu,
            GOAL_MS,
            FAIL_MS,
            unit=" ms",
        ),
    ]
    for goal in goals:
        print("  " + goal.describe())
    result = {
        "config": {
            "runs": runs,
            "aiohttp_runs": aiohttp_runs,
            "env": ENV.name,
            "statistic": "median child CPU time (user+sys); wall time for the record",
        },
        "headers": headers,
        "rows": rows,
        "cpu_ms": cpu,
        "apply_ms": apply_ms,
        "apply_ms_0_1_0": reference_ms,
        "wall_ms": wall,
        "modules_added_by_import": new_modules,
        "importtime_us": {
            "aiohttp_waiterfix": pkg_us,
            "sitecustomize": site_us,
            "import_tree": subtree,
            "shim_part_of_aiohttp_import": apply_parts,
        },
        "goals": [g.as_dict() for g in goals],
    }
    save_section("startup", result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    return bench_main(run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
