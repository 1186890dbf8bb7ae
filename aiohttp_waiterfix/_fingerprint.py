"""Fingerprints of the connector methods we replace, to refuse code we do not know.

A fingerprint hashes what a compiled method *does* (bytecode, names, constants,
nested code) and ignores where it sits (line numbers, file name), so it is the
same for every release whose method has the same body.  Bytecode differs
between Python versions and optimisation levels, so the table of known
fingerprints (``_fingerprint_table.py``, made by ``tools/make_fingerprints.py``)
has one entry per ``(Python minor version, sys.flags.optimize)``.
"""

from __future__ import annotations

import hashlib
import sys
from types import CodeType
from typing import Dict, Optional, Tuple

from ._fingerprint_table import TABLE

FINGERPRINTED_METHODS = (
    "connect",
    "_get",
    "_available_connections",
    "_release_waiter",
    "_release_acquired",
    "_close",
)


def code_fingerprint(code: CodeType) -> str:
    """A short, stable hash of a code object's behaviour."""
    digest = hashlib.sha256()
    _feed(digest, code)
    return digest.hexdigest()[:16]


def _feed(digest: hashlib._Hash, code: CodeType) -> None:
    digest.update(code.co_code)
    shape = (
        code.co_name,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )
    digest.update(repr(shape).encode())
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _feed(digest, const)
        else:
            digest.update(_stable_repr(const).encode())


def _stable_repr(value: object) -> str:
    """repr() that does not depend on hash randomisation (frozenset order)."""
    if isinstance(value, frozenset):
        return "frozenset({" + ", ".join(sorted(_stable_repr(v) for v in value)) + "})"
    if isinstance(value, tuple):
        return "(" + ", ".join(_stable_repr(v) for v in value) + ",)"
    return repr(value)


def table_key(version_info: Tuple[int, ...] = (sys.version_info[0], sys.version_info[1]), optimize: int = -1) -> str:
    """Key of the running interpreter in the fingerprint table, e.g. ``3.11-O0``."""
    if optimize < 0:
        optimize = sys.flags.optimize
    return f"{version_info[0]}.{version_info[1]}-O{min(optimize, 2)}"


def check_methods(cls: type, release: str, release_index: Dict[str, int]) -> Optional[str]:
    """Return why ``cls``'s methods are not the ones ``release`` ships, or None.

    ``release_index`` orders the known releases, so that a fingerprint recorded
    for the range ``(first, last)`` can be checked to cover ``release``.
    """
    key = table_key()
    known = TABLE.get(key)
    if known is None:
        return f"no fingerprints recorded for Python {key} (cannot verify the code to replace)"
    position = release_index[release]
    for name in FINGERPRINTED_METHODS:
        method = vars(cls).get(name)
        code = getattr(method, "__code__", None)
        if not isinstance(code, CodeType) or type(method).__name__ != "function":
            return f"BaseConnector.{name} is not the plain function aiohttp defines (wrapped or replaced?)"
        ranges = known.get(name, {}).get(code_fingerprint(code))
        if ranges is None or not any(release_index[first] <= position <= release_index[last] for first, last in ranges):
            return f"BaseConnector.{name} differs from aiohttp {release}'s code (locally patched or vendored?)"
    return None
