"""What every fix's conformance run shares: loading the fix directory's files, and the patched/unpatched gate.

Standard library only at import: ``fetch_upstream.py`` runs before any test environment exists.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load(path: Path) -> ModuleType:
    """Import a file by path: the fix directories are not packages, and they share file names."""
    spec = importlib.util.spec_from_file_location(f"waiterfix_conformance_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_fix(fix_id: str, reference_ok: bool = False) -> bool:
    """Stop the run unless fix ``fix_id`` is in the state the run asks for; return whether it is applied.

    A patched run needs the fix applied (or, with ``reference_ok``, a release that has upstream's fix);
    the unpatched run (``AIOHTTP_WAITERFIX=0``) needs it not applied.
    """
    import aiohttp
    import pytest

    import aiohttp_waiterfix
    from aiohttp_waiterfix._registry import FIXES
    from aiohttp_waiterfix._startup import switched_off
    from aiohttp_waiterfix._status import assess, fix_applied

    status = aiohttp_waiterfix.status()  # under the kill switch it lists no fixes
    applied = fix_applied(status, fix_id)
    if switched_off():
        if applied:
            raise pytest.UsageError(f"AIOHTTP_WAITERFIX=0 (unpatched run) but the {fix_id} fix is applied")
    elif not applied:
        fixed_upstream = assess(next(fix for fix in FIXES if fix.id == fix_id), aiohttp.__version__).affected is False
        if not (reference_ok and fixed_upstream):
            reason = next((fix.reason for fix in status.fixes if fix.id == fix_id), status.reason)
            raise pytest.UsageError(f"conformance run needs the {fix_id} fix, but it is not applied: {reason}")
    return applied
