"""Where the CPython interpreters of the test matrix are: the one lookup the noxfile, benchmarks and tools share.

By absolute path, so nothing depends on pyenv shims or on which Pythons pyenv
has enabled: the newest ``~/.pyenv/versions/3.X.Y`` (or ``$PYENV_ROOT``), else
a real ``python3.X`` on PATH, else None.  Standard library only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Optional

PYTHON_MINORS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))) / "versions"


def find_python(minor: str) -> Optional[str]:
    """The interpreter for Python ``minor`` (``"3.11"``), or None."""
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


def find_pythons() -> Dict[str, Optional[str]]:
    """``{minor: interpreter or None}`` for every Python of the matrix."""
    return {minor: find_python(minor) for minor in PYTHON_MINORS}
