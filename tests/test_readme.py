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


def test_the_compatibility_table_shows_the_newest_run_of_each_cell() -> None:
    """A newer reduced run replaces an older full run of the same cell: the full one tested older code."""
    sys.path.insert(0, str(TOOLS))
    try:
        import compat_table
    finally:
        sys.path.remove(str(TOOLS))
    old_full = {"python": "3.9", "aiohttp": "3.10.0", "variant": "wheel", "fixes": ["waiters"], "outcome": "passed"}
    old_uvloop = dict(old_full, python="3.11", variant="uvloop")
    new_reduced = dict(old_full, variant="wheel-reduced", fixes=["waiters", "sni-key"])
    new_full_elsewhere = dict(old_full, python="3.11", fixes=["waiters", "sni-key"])
    merged = compat_table.merge([old_full, old_uvloop], [new_reduced, new_full_elsewhere])
    assert old_full not in merged and old_uvloop in merged
    assert new_reduced in merged and new_full_elsewhere in merged
    # Within one set of records a full run still wins over a reduced one of its cell.
    merged = compat_table.merge([], [new_reduced, dict(new_reduced, variant="wheel")])
    assert "w s, 0 ✓ |" in compat_table.render(merged).split("| 3.10.0 |", 1)[1].split("\n", 1)[0]
