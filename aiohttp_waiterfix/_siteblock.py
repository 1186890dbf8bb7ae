"""The block ``enable`` writes into ``sitecustomize.py``, as bytes in, bytes out.

The block imports this package (two small modules, no aiohttp, no wrapt) and
calls ``activate("sitecustomize")``, which waits for ``aiohttp.connector`` to
be imported.  Removing it gives back exactly the bytes that were there.
"""

from __future__ import annotations

from ._startup import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import List, Optional, Tuple

BEGIN = b"# >>> aiohttp-waiterfix >>>"
END = b"# <<< aiohttp-waiterfix <<<"
STATE = b"# aiohttp-waiterfix-state:"
CREATED = b"created-file"
"""State flag: the file did not exist before ``enable``; ``disable`` deletes it once empty."""
ADDED_NEWLINE = b"added-newline"
"""State flag: ``enable`` ended the file's last line with ``\\n``; ``disable`` takes it away again."""

_BODY = b"""\
# Activates aiohttp-waiterfix (run-time backports of aiohttp pool fixes) when Python
# starts; aiohttp itself is patched only if and when a program imports it.
# AIOHTTP_WAITERFIX=0 turns it off for a process; `python -m aiohttp_waiterfix disable`
# removes this block.
try:
    import aiohttp_waiterfix as _aiohttp_waiterfix

    _aiohttp_waiterfix.activate("sitecustomize")
    del _aiohttp_waiterfix
except Exception:
    pass
"""


class BlockError(Exception):
    """The file holds a damaged block (a begin marker without its end, or the reverse)."""


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
