"""``enable``/``disable``: activation at interpreter start through ``sitecustomize.py``.

``enable`` appends a marked block to ``sitecustomize.py`` in the interpreter's
site-packages (or ``--site-dir``), keeping whatever the file already holds.
The block imports this package (two small modules, no aiohttp, no wrapt) and
calls ``activate("sitecustomize")``, which waits for ``aiohttp.connector`` to
be imported.  ``disable`` removes exactly the bytes ``enable`` added.

Python imports only the *first* ``sitecustomize`` on ``sys.path``, so after
writing, ``enable`` asks a fresh interpreter which file it really loads.
"""

from __future__ import annotations

import os
import sys

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

BEGIN = b"# >>> aiohttp-waiterfix >>>"
END = b"# <<< aiohttp-waiterfix <<<"
STATE = b"# aiohttp-waiterfix-state:"
CREATED = b"created-file"
"""State flag: the file did not exist before ``enable``; ``disable`` deletes it once empty."""
ADDED_NEWLINE = b"added-newline"
"""State flag: ``enable`` ended the file's last line with ``\\n``; ``disable`` takes it away again."""

_BODY = b"""\
# Activates aiohttp-waiterfix (the aiohttp#9671 backport) when Python starts; aiohttp
# itself is patched only if and when a program imports it.  AIOHTTP_WAITERFIX=0 turns
# it off for a process; `python -m aiohttp_waiterfix disable` removes this block.
try:
    import aiohttp_waiterfix as _aiohttp_waiterfix

    _aiohttp_waiterfix.activate("sitecustomize")
    del _aiohttp_waiterfix
except Exception:
    pass
"""

EXIT_OK = 0
EXIT_ERROR = 1
"""Nothing useful was done: unwritable or missing directory, damaged block."""
EXIT_NOT_EFFECTIVE = 3
"""The block is written but the interpreter does not run it (another sitecustomize wins)."""

_PREFIX = "aiohttp-waiterfix"


class BlockError(Exception):
    """The file holds a damaged block (a begin marker without its end, or the reverse)."""


# --- the block, as bytes in, bytes out -------------------------------------


def make_block(created: bool, added_newline: bool) -> bytes:
    flags = [flag for flag, on in ((CREATED, created), (ADDED_NEWLINE, added_newline)) if on]
    state = STATE + b" " + (b" ".join(flags) if flags else b"-") + b"\n"
    return BEGIN + b"\n" + state + _BODY + END + b"\n"


def _find_blocks(data: bytes) -> List[Tuple[int, int, bytes]]:
    """``(start, end, state)`` of each block: ``data[start:end]`` is the block's lines."""
    blocks: List[Tuple[int, int, bytes]] = []
    start: Optional[int] = None
    state = b""
    pos = 0
    for line in data.splitlines(keepends=True):
        text = line.strip()
        if text == BEGIN:
            if start is not None:
                raise BlockError("a block begins inside another block")
            start, state = pos, b""
        elif text.startswith(STATE) and start is not None:
            state = text[len(STATE) :]
        elif text == END:
            if start is None:
                raise BlockError("a block end marker has no begin marker")
            blocks.append((start, pos + len(line), state))
            start = None
        pos += len(line)
    if start is not None:
        raise BlockError("a block has no end marker")
    return blocks


def has_block(data: bytes) -> bool:
    try:
        return bool(_find_blocks(data))
    except BlockError:
        return True


def add_block(data: Optional[bytes]) -> bytes:
    """Return the file's new content with exactly one current block; ``data`` None: no file yet."""
    if data is None:
        return make_block(created=True, added_newline=False)
    blocks = _find_blocks(data)
    if blocks:  # refresh the first block in place (keeping its flags), drop any duplicate
        start, end, state = blocks[0]
        flags = state.split()
        new = make_block(CREATED in flags, ADDED_NEWLINE in flags)
        out = data[:start] + new
        cursor = end
        for dup_start, dup_end, _ in blocks[1:]:
            out += data[cursor:dup_start]
            cursor = dup_end
        return out + data[cursor:]
    added_newline = bool(data) and not data.endswith(b"\n")
    return data + (b"\n" if added_newline else b"") + make_block(created=False, added_newline=added_newline)


def remove_block(data: bytes) -> Tuple[bytes, bool]:
    """Return ``(content without our blocks, whether we created the file)``."""
    out = b""
    cursor = 0
    created = False
    for start, end, state in _find_blocks(data):
        flags = state.split()
        created = created or CREATED in flags
        before = data[cursor:start]
        if ADDED_NEWLINE in flags and end == len(data):
            before = before[:-2] if before.endswith(b"\r\n") else before[:-1] if before.endswith(b"\n") else before
        out += before
        cursor = end
    return out + data[cursor:], created


# --- files -------------------------------------------------------------------


def default_site_dir() -> str:
    """The running interpreter's site-packages (sysconfig ``purelib``)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path: str, data: bytes) -> None:
    """Replace ``path`` atomically, so that a starting interpreter never reads half a file.

    Writes through a symlink (Debian links ``/usr/lib/python3.X/sitecustomize.py``
    to ``/etc``) and keeps an existing file's mode and owner.
    """
    import tempfile

    real = os.path.realpath(path)
    try:
        info: Optional[os.stat_result] = os.stat(real)
    except FileNotFoundError:
        info = None
    if info is not None and not os.access(real, os.W_OK):
        raise PermissionError(13, "Permission denied", real)
    fd, tmp = tempfile.mkstemp(prefix=".sitecustomize-", suffix=".tmp", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if info is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        else:
            os.chmod(tmp, info.st_mode & 0o7777)
            if hasattr(os, "chown") and (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(tmp, info.st_uid, info.st_gid)
                except OSError:
                    pass
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _sitecustomize_path(site_dir: Optional[str]) -> str:
    return os.path.join(os.path.abspath(site_dir or default_site_dir()), "sitecustomize.py")


def _same_file(a: Optional[str], b: str) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _say(message: str) -> None:
    print(f"{_PREFIX}: {message}")


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"{_PREFIX}: {message}", file=sys.stderr)
    return code


def _shown(path: str) -> str:
    real = os.path.realpath(path)
    return path if real == path else f"{path} (-> {real})"


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
        old = _read(path)
        new = add_block(old)
    except BlockError as exc:
        return _fail(f"{path} holds a damaged aiohttp-waiterfix block ({exc}); fix or remove it by hand.")
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}.")
    if new == old:
        _say(f"already enabled in {path}.")
    else:
        try:
            _write(path, new)
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
        _say(f"{what} {_shown(path)}.")
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
        data = _read(path)
        if data is None or not has_block(data):
            _say(f"not enabled in {path}; nothing to do.")
            other = None if site_dir else _loaded_block_path()
            if other is not None and not _same_file(other, path):
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
            _write(path, rest)
            _say(f"removed the block from {_shown(path)}; the rest of the file is as it was.")
    except OSError as exc:
        return _fail(f"cannot change {path}: {exc.strerror or exc}. Run this with the rights to change it.")
    return EXIT_OK


# --- is it effective? ----------------------------------------------------------

_PROBE = (
    "import json, sys\n"
    "m = sys.modules.get('sitecustomize')\n"
    "s = sys.modules.get('aiohttp_waiterfix._startup')\n"
    "print(json.dumps({'file': getattr(m, '__file__', None), 'label': getattr(s, 'pending_label', None),"
    " 'path': sys.path}))\n"
)


def _bootstrap_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def _probe_env() -> Dict[str, str]:
    """This environment as a plain start would see it: no kill switch, no run wrapper on PYTHONPATH."""
    env = dict(os.environ)
    env.pop("AIOHTTP_WAITERFIX", None)
    if env.get("PYTHONPATH"):
        ours = os.path.normcase(_bootstrap_dir())
        kept = [p for p in env["PYTHONPATH"].split(os.pathsep) if os.path.normcase(os.path.abspath(p)) != ours]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            del env["PYTHONPATH"]
    return env


def probe(executable: Optional[str] = None) -> Any:
    """Start a fresh interpreter and return which sitecustomize it loaded and whether our block ran."""
    import json
    import subprocess

    proc = subprocess.run(
        [executable or sys.executable, "-c", _PROBE],
        env=_probe_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"file": None, "label": None, "path": []}
    result["stderr"] = proc.stderr.strip()
    return result


def _check_effective(path: str) -> int:
    exe = sys.executable
    try:
        seen = probe(exe)
    except Exception as exc:
        return _fail(f"written, but could not start {exe} to check that it runs the block: {exc!r}", EXIT_NOT_EFFECTIVE)
    winner = seen["file"]
    if _same_file(winner, path):
        if seen["label"] == "sitecustomize":
            _say(f"active: every start of {exe} now runs the block (AIOHTTP_WAITERFIX=0 turns it off).")
            return EXIT_OK
        return _fail(
            f"{exe} loads {path} but the block did not activate: aiohttp_waiterfix cannot be imported by it.\n"
            f"  Install aiohttp-waiterfix for that interpreter: {exe} -m pip install aiohttp-waiterfix"
            + (f"\n  Its stderr: {seen['stderr']}" if seen["stderr"] else ""),
            EXIT_NOT_EFFECTIVE,
        )
    directory = os.path.dirname(path)
    if not any(_same_dir(p, directory) for p in seen["path"]):
        reason = f"{directory} is not on its sys.path, so it never reads sitecustomize.py there."
    elif winner:
        reason = (
            f"it loads {_shown(winner)} instead,\n"
            "  which comes earlier on sys.path (Python runs only the first sitecustomize it finds)."
        )
        if any(_same_dir(p, os.path.dirname(winner)) for p in _env_path_entries()):
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
    if not _same_dir(directory, default_site_dir()):
        undo += f" --site-dir {directory}"
    return _fail(
        f"the block in {path} will NOT run in {exe}:\n  {reason}\n"
        "Fix it in one of these ways:\n"
        + "".join(f"  - {fix}\n" for fix in fixes)
        + f"(`{undo}` removes the unused block.)",
        EXIT_NOT_EFFECTIVE,
    )


def _same_dir(a: str, b: str) -> bool:
    return bool(a) and os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _env_path_entries() -> List[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


# --- for `status` ----------------------------------------------------------------


def _loaded_block_path() -> Optional[str]:
    """The sitecustomize this process loaded, if it holds our block."""
    module = sys.modules.get("sitecustomize")
    path: Optional[str] = getattr(module, "__file__", None)
    if path and _file_has_block(path):
        return os.path.abspath(path)
    return None


def _file_has_block(path: str) -> bool:
    try:
        data = _read(path)
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
            return path if _file_has_block(path) else None
        loaded = _loaded_block_path()
        if loaded is not None:
            return loaded
        path = _sitecustomize_path(None)
        return path if _file_has_block(path) else None
    except Exception:
        return None


def status_lines() -> List[str]:
    """One or two lines for ``status``: is the block installed, and does this interpreter run it?"""
    path = installed_block_path()
    if path is None:
        return ["sitecustomize: not enabled (`python -m aiohttp_waiterfix enable` turns it on)"]
    loaded = _loaded_block_path()
    if loaded is not None:
        return [f"sitecustomize: enabled in {path}; this interpreter runs it"]
    module = sys.modules.get("sitecustomize")
    winner = getattr(module, "__file__", None)
    detail = f"{winner} is loaded instead" if winner else "no sitecustomize was loaded"
    return [f"sitecustomize: enabled in {path}, but this interpreter does not run it ({detail})"]


# --- argparse wiring ------------------------------------------------------------


def add_arguments(subparsers: Any) -> None:
    """Add ``enable`` and ``disable`` to an ``add_subparsers()`` object; each sets ``func(args) -> int``."""
    for name, func, text in (
        ("enable", enable, "activate the fix in every start of this interpreter (writes sitecustomize.py)"),
        ("disable", disable, "remove what `enable` wrote"),
    ):
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument(
            "--site-dir",
            metavar="DIR",
            default=None,
            help="directory of the sitecustomize.py to change (default: this interpreter's site-packages)",
        )
        parser.set_defaults(func=lambda args, _func=func: _func(args.site_dir))
