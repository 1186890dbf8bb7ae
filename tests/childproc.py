"""Running the child programs of tests/children/ in fresh interpreters: the one subprocess helper.

A child is a real file under ``tests/children/`` (so ruff and mypy check it),
takes its parameters from ``argv`` and the environment, and reports by
printing one JSON object as the last line of its stdout::

    result = run_child("startup.py", "steps", "shim", "aiohttp", env={"AIOHTTP_WAITERFIX": "0"})
    result.payload["status"]["applied"], result.warnings, result.stderr

API:

* ``run_child(script, *args, env=, unset=, pythonpath=, python=, launcher=, python_args=,
  timeout=, returncode=) -> ChildResult`` -- runs ``[*launcher, python, *python_args,
  tests/children/<script>, *args]`` and checks its exit status (``returncode=None``: any).
* ``environment(env=, unset=, pythonpath=)`` -- the environment ``run_child`` gives a child:
  this process's, less the names matching an ``unset`` pattern (``fnmatch``, e.g. ``"DD_*"``),
  plus ``env``, with ``pythonpath`` put first on ``PYTHONPATH``.
* :class:`ChildResult` -- ``returncode``, ``stdout``, ``stderr``; ``payload`` (the JSON
  line, an AssertionError when the child printed none) and ``warnings`` (the stderr
  lines of ``WaiterfixWarning``s: run the child with ``-W always`` to see every one).

Imports no pytest and no aiohttp: a failure is an AssertionError naming the child.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

TESTS = Path(__file__).resolve().parent
CHILDREN = TESTS / "children"

PathLike = Union[str, "os.PathLike[str]"]


class ChildResult(NamedTuple):
    args: List[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def payload(self) -> Dict[str, Any]:
        """The JSON object on the last non-empty line of stdout."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        try:
            payload = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AssertionError(f"child printed no JSON result:\n{self.describe()}") from None
        if not isinstance(payload, dict):
            raise AssertionError(f"child's result is not a JSON object:\n{self.describe()}")
        return payload

    @property
    def warnings(self) -> List[str]:
        return [line for line in self.stderr.splitlines() if "WaiterfixWarning:" in line]

    def describe(self) -> str:
        return (
            f"{' '.join(self.args)}\nexit status {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr (its end)\n{self.stderr[-4000:]}"
        )


def environment(
    env: Optional[Mapping[str, str]] = None, unset: Iterable[str] = (), pythonpath: Sequence[PathLike] = ()
) -> Dict[str, str]:
    patterns = tuple(unset)
    result = {k: v for k, v in os.environ.items() if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    result.update(env or {})
    if pythonpath:
        inherited = [result["PYTHONPATH"]] if result.get("PYTHONPATH") else []
        result["PYTHONPATH"] = os.pathsep.join([*(os.fspath(p) for p in pythonpath), *inherited])
    return result


def run_child(
    script: str,
    *args: str,
    env: Optional[Mapping[str, str]] = None,
    unset: Iterable[str] = (),
    pythonpath: Sequence[PathLike] = (),
    python: PathLike = sys.executable,
    launcher: Sequence[PathLike] = (),
    python_args: Sequence[str] = (),
    timeout: float = 120.0,
    returncode: Optional[int] = 0,
) -> ChildResult:
    """Run ``tests/children/<script> args...`` in a fresh interpreter and return what it did."""
    command = [*(os.fspath(p) for p in launcher), os.fspath(python), *python_args, str(CHILDREN / script), *args]
    proc = subprocess.run(
        command,
        env=environment(env, unset, pythonpath),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = ChildResult(command, proc.returncode, proc.stdout, proc.stderr)
    if returncode is not None and proc.returncode != returncode:
        raise AssertionError(f"child exited {proc.returncode}, not {returncode}:\n{result.describe()}")
    return result
