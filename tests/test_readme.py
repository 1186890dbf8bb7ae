"""The README's generated tables match what they are generated from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_the_fix_table_matches_the_declarations() -> None:
    proc = subprocess.run([sys.executable, str(TOOLS / "fix_table.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
