"""What every fix's conformance run shares: loading its files, excluding tests per release, the patched gate.

Standard library only at import: ``fetch_upstream.py`` runs before any test environment exists.  The
conftests put this directory on ``sys.path``, so the files they load (exclusions, selection) import it too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Iterable, NamedTuple, Optional


def load(path: Path) -> ModuleType:
    """Import a file by path: the fix directories are not packages, and they share file names."""
    spec = importlib.util.spec_from_file_location(f"waiterfix_conformance_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Exclusion(NamedTuple):
    """An upstream test not run on releases ``first`` to ``last``, and why."""

    test: str
    """Test function name (parameters ignored), or a full ``name[param]``."""
    first: str
    last: str
    reason: str


def exclusion_for(exclusions: Iterable[Exclusion], name: str, version: str) -> Optional[Exclusion]:
    """The exclusion of test ``name`` (pytest's ``item.name``) on aiohttp ``version``, or None."""
    from packaging.version import Version

    base = name.split("[", 1)[0]
    for exclusion in exclusions:
        if exclusion.test in (name, base) and Version(exclusion.first) <= Version(version) <= Version(exclusion.last):
            return exclusion
    return None


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
