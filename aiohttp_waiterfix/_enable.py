"""``enable``/``disable``: activation at interpreter start through ``sitecustomize.py``.

``enable`` appends the block (``_siteblock``) to ``sitecustomize.py`` in the
interpreter's site-packages (or ``--site-dir``), keeping whatever the file
already holds; ``disable`` removes exactly the bytes ``enable`` added.
Python imports only the *first* ``sitecustomize`` on ``sys.path``, so after
writing, ``enable`` asks a fresh interpreter (``_probe``) which file it really
loads.  Every function here returns an exit code and prints; none raises.
"""

from __future__ import annotations

import os
import sys

from . import _probe
from ._files import read_or_none, same_path, shown, write_atomically
from ._run import plain_start_env
from ._siteblock import BlockError, add_block, has_block, remove_block
from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import List, Optional

EXIT_OK = 0
EXIT_ERROR = 1
"""Nothing useful was done: unwritable or missing directory, damaged block."""
EXIT_NOT_EFFECTIVE = 3
"""The block is written but the interpreter does not run it (another sitecustomize wins)."""

_PREFIX = "aiohttp-waiterfix"

_PREFIX = "aiohttp-waiterfix"


def default_site_dir() -> str:
    """The running interpreter's site-packages (sysconfig ``purelib``)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _sitecustomize_path(site_dir: Optional[str]) -> str:
    return os.path.join(os.path.abspath(site_dir or default_site_dir()), "sitecustomize.py")


def _say(message: str) -> None:
    print(f"{_PREFIX}: {message}")


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"{_PREFIX}: {message}", file=sys.stderr)
    return code


# --- enable / disable ----------------------------------------------------------


def enable(site_dir: Optional[str] = None) -> int:
    """Add the block to ``sitecustomize.py``; return an exit code, never raise."""
    try:
        return _enable(site_dir)
    except Exception as exc:  # the command line must never show a traceback
        return _fail(f"enable failed: {exc!r}")


def _enable(site_dir: Optional[str]) -> int:
    path = _sitecustomize_path(site_dir)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return _fail(f"{directory} is not a directory; nothing written.")
    try:
        old = read_or_none(path)
        new = add_block(old)
    except BlockError as exc:
        return _fail(f"{path} holds a damaged aiohttp-waiterfix block ({exc}); fix or remove it by hand.")
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}.")
    if new == old:
        _say(f"already enabled in {path}.")
    else:
        try:
            write_atomically(path, new)
        except OSError as exc:
            return _fail(
                f"cannot write {path}: {exc.strerror or exc}.\n"
                "  Run this with the rights to change that directory, pick another with --site-dir,\n"
                "  or use the run wrapper, which needs no write access: aiohttp-waiterfix-run python app.py"
            )
        if old is None:
            what = "created"
        elif has_block(old):
            what = "updated the block in"
        else:
            what = "added the block to"
        _say(f"{what} {shown(path)}.")
    return _check_effective(path)


def disable(site_dir: Optional[str] = None) -> int:
    """Remove the block from ``sitecustomize.py``; return an exit code, never raise."""
    try:
        return _disable(site_dir)
    except Exception as exc:
        return _fail(f"disable failed: {exc!r}")


def _disable(site_dir: Optional[str]) -> int:
    path = _sitecustomize_path(site_dir)
    try:
        data = read_or_none(path)
        if data is None or not has_block(data):
            _say(f"not enabled in {path}; nothing to do.")
            other = None if site_dir else _loaded_block_path()
            if other is not None and not same_path(other, path):
                _say(f"note: {other} holds a block: `disable --site-dir {os.path.dirname(other)}` removes it.")
            return EXIT_OK
        rest, created = remove_block(data)
    except BlockError as exc:
        return _fail(f"{path} holds a damaged aiohttp-waiterfix block ({exc}); fix or remove it by hand.")
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}.")
    try:
        if created and not rest:
            os.unlink(os.path.realpath(path))
            _say(f"removed {path} (enable had created it).")
        else:
            write_atomically(path, rest)
            _say(f"removed the block from {shown(path)}; the rest of the file is as it was.")
    except OSError as exc:
        return _fail(f"cannot change {path}: {exc.strerror or exc}. Run this with the rights to change it.")
    return EXIT_OK


# --- is it effective? ----------------------------------------------------------


def _check_effective(path: str) -> int:
    exe = sys.executable
    seen = _probe.run(env=plain_start_env())
    if "error" in seen:
        return _fail(f"written, but could not check that {exe} runs the block: {seen['error']}", EXIT_NOT_EFFECTIVE)
    winner = seen["sitecustomize"]
    if same_path(winner, path):
        if seen["pending_label"] == "sitecustomize":
            _say(f"active: every start of {exe} now runs the block (AIOHTTP_WAITERFIX=0 turns it off).")
            return EXIT_OK
        return _fail(
            f"{exe} loads {path} but the block did not activate: aiohttp_waiterfix cannot be imported by it.\n"
            f"  Install aiohttp-waiterfix for that interpreter: {exe} -m pip install aiohttp-waiterfix"
            + (f"\n  Its stderr: {seen['stderr']}" if seen["stderr"] else ""),
            EXIT_NOT_EFFECTIVE,
        )
    directory = os.path.dirname(path)
    if not any(same_path(p, directory) for p in seen["path"]):
        reason = f"{directory} is not on its sys.path, so it never reads sitecustomize.py there."
    elif winner:
        reason = (
            f"it loads {shown(winner)} instead,\n"
            "  which comes earlier on sys.path (Python runs only the first sitecustomize it finds)."
        )
        if any(same_path(p, os.path.dirname(winner)) for p in _env_path_entries()):
            reason += f"\n  {os.path.dirname(winner)} is on PYTHONPATH: taking it off PYTHONPATH also fixes this."
    else:
        reason = "it did not load any sitecustomize (an error in one?)."
        if seen["stderr"]:
            reason += f"\n  Its stderr: {seen['stderr']}"
    fixes = ["run the program under the wrapper (no file changes):  aiohttp-waiterfix-run python app.py"]
    if winner:
        fixes.append(
            f"or put the block into the file that wins:  {exe} -m aiohttp_waiterfix enable --site-dir "
            f"{os.path.dirname(winner)}"
        )
    fixes.append("or import aiohttp_waiterfix at the top of the program")
    fixes.append(
        f"or a .pth file in {default_site_dir()} holding the line `import aiohttp_waiterfix` "
        "(newer Pythons deprecate import lines in .pth files)"
    )
    undo = f"{exe} -m aiohttp_waiterfix disable"
    if not same_path(directory, default_site_dir()):
        undo += f" --site-dir {directory}"
    return _fail(
        f"the block in {path} will NOT run in {exe}:\n  {reason}\n"
        "Fix it in one of these ways:\n"
        + "".join(f"  - {fix}\n" for fix in fixes)
        + f"(`{undo}` removes the unused block.)",
        EXIT_NOT_EFFECTIVE,
    )


def _env_path_entries() -> List[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


# --- where the block is ------------------------------------------------------------


def _loaded_block_path() -> Optional[str]:
    """The sitecustomize this process loaded, if it holds our block."""
    module = sys.modules.get("sitecustomize")
    path: Optional[str] = getattr(module, "__file__", None)
    if path and block_in(path):
        return os.path.abspath(path)
    return None


def block_in(path: Optional[str]) -> bool:
    """Does the file at ``path`` hold our block?"""
    if not path:
        return False
    try:
        data = read_or_none(path)
    except OSError:
        return False
    return data is not None and has_block(data)


def installed_block_path(site_dir: Optional[str] = None) -> Optional[str]:
    """The sitecustomize.py holding an enabled block, or None.

    Without ``site_dir``: the sitecustomize this interpreter loaded, then the
    one in its site-packages.  Never raises.
    """
    try:
        if site_dir is not None:
            path = _sitecustomize_path(site_dir)
            return path if block_in(path) else None
        loaded = _loaded_block_path()
        if loaded is not None:
            return loaded
        path = _sitecustomize_path(None)
        return path if block_in(path) else None
    except Exception:
        return None
