"""``aiohttp-waiterfix-run COMMAND [ARGS...]``: run a command with the fix active in its Python processes.

Puts ``aiohttp_waiterfix/_bootstrap`` first on ``PYTHONPATH`` and replaces
itself with the command (``exec``), so exit codes and signals are the
command's own.  Child processes inherit ``PYTHONPATH``, so every Python they
start is covered too (unless started with ``-E``/``-I``, which ignore it).
``AIOHTTP_WAITERFIX=0`` runs the command unchanged.
"""

from __future__ import annotations

import os
import sys

from ._startup import ENV_VAR, TYPE_CHECKING, switched_off

if TYPE_CHECKING:
    from typing import Dict, List, Optional

PROG = "aiohttp-waiterfix-run"
USAGE = f"""\
usage: {PROG} [--] COMMAND [ARGS...]

Run COMMAND with aiohttp-waiterfix active in every Python process it starts
(the application needs no code change).  aiohttp is patched only in processes
that import it, and only on the affected releases (before 3.10.11).

  {PROG} python app.py
  {PROG} gunicorn app:app -k aiohttp.GunicornWebWorker

It works by putting {os.path.join("aiohttp_waiterfix", "_bootstrap")} first on PYTHONPATH; that
sitecustomize then runs the sitecustomize the process would otherwise have.
Set {ENV_VAR}=0 to run COMMAND unchanged.  Exit status: COMMAND's own,
127 if COMMAND is not found, 126 if it cannot be run, 2 for a usage error.
"""

EXIT_USAGE = 2
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127


def bootstrap_dir() -> str:
    """The directory whose ``sitecustomize.py`` the wrapper puts first on PYTHONPATH."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def _other_pythonpath_entries(env: Dict[str, str]) -> List[str]:
    ours = os.path.normcase(bootstrap_dir())
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [p for p in entries if os.path.normcase(os.path.abspath(p)) != ours]


def command_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for COMMAND: the bootstrap first on PYTHONPATH, unless the kill switch is set."""
    env = dict(os.environ if environ is None else environ)
    if switched_off(env):
        return env
    env["PYTHONPATH"] = os.pathsep.join([bootstrap_dir(), *_other_pythonpath_entries(env)])
    return env


def plain_start_env() -> Dict[str, str]:
    """This environment as a plain start would see it: no kill switch, not under the wrapper."""
    env = dict(os.environ)
    env.pop(ENV_VAR, None)
    kept = _other_pythonpath_entries(env)
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _error(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if args and args[0] == "--version":
        from . import __version__

        print(f"{PROG} (aiohttp-waiterfix) {__version__}")
        return 0
    if args and args[0] == "--":
        args = args[1:]
    elif args and args[0].startswith("-"):
        sys.stderr.write(USAGE)
        return _error(f"unknown option {args[0]!r} (put `--` before a command that starts with '-')", EXIT_USAGE)
    if not args:
        sys.stderr.write(USAGE)
        return _error("no command given", EXIT_USAGE)
    return run(args)


def run(args: List[str]) -> int:
    """Replace this process with ``args`` (on POSIX); return an exit code only if that fails."""
    import shutil

    env = command_env()
    command = args[0]
    # Look it up on the command's own PATH, as exec will, to fail with a clear message.
    if shutil.which(command, path=env.get("PATH")) is None:
        if os.sep in command or (os.altsep and os.altsep in command):
            if os.path.isdir(command):
                return _error(f"{command}: is a directory", EXIT_CANNOT_RUN)
            if os.path.exists(command):
                return _error(f"{command}: permission denied (not executable)", EXIT_CANNOT_RUN)
        return _error(f"{command}: command not found", EXIT_NOT_FOUND)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix" and hasattr(os, "execvpe"):
        try:
            os.execvpe(command, args, env)
        except FileNotFoundError:
            return _error(f"{command}: command not found", EXIT_NOT_FOUND)
        except OSError as exc:
            return _error(f"{command}: cannot run: {exc.strerror or exc}", EXIT_CANNOT_RUN)
    return _run_child(args, env)  # Windows: os.exec* does not replace the process there


def _run_child(args: List[str], env: Dict[str, str]) -> int:
    import subprocess

    try:
        child = subprocess.Popen(args, env=env)
    except FileNotFoundError:
        return _error(f"{args[0]}: command not found", EXIT_NOT_FOUND)
    except OSError as exc:
        return _error(f"{args[0]}: cannot run: {exc.strerror or exc}", EXIT_CANNOT_RUN)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the child got the Ctrl-C too; wait for it to decide
            continue


if __name__ == "__main__":
    sys.exit(main())
