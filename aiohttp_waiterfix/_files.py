"""Files and paths for the start-up commands: reading, replacing atomically, comparing."""

from __future__ import annotations

import os

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Optional


def read_or_none(path: str) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomically(path: str, data: bytes) -> None:
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


def same_path(a: Optional[str], b: Optional[str]) -> bool:
    """Do ``a`` and ``b`` name the same file or directory (symlinks followed; False if either is empty)?"""
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def shown(path: str) -> str:
    """``path``, plus where it really points if it is a symlink."""
    real = os.path.realpath(path)
    return path if real == path else f"{path} (-> {real})"
