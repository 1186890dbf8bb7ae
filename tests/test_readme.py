"""The README's generated tables match what they are generated from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_the_fix_table_matches_the_declarations() -> None:
    proc = subprocess.run([sys.executable, str(TOOLS / "fix_table.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` must call exactly the README's second command (the one that installs test tooling and runs it)."""
    root = TOOLS.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.split("```", 2)[1].splitlines() if line and not line.startswith(("#", "bash"))]
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    block = ci.split("# --- the README's test command", 1)[1].split("\n# ---", 1)[0]
    assert commands[1] in block.splitlines(), f"README: {commands[1]!r}\n.ci/run: {block!r}"
