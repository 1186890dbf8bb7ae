"""Fingerprints of the code a fix replaces, to refuse code we do not know.

A fingerprint hashes a function's source *tokens*: names, operators, literals
and the block structure.  Comments, blank lines, line breaks inside brackets,
indentation width and docstrings (statements that are only a string) are
dropped.  So it does not change with the Python version (unlike bytecode), and
a release whose function differs only in comments keeps its fix, while any
changed statement is refused.  ``tools/make_fingerprints.py`` records them
from each release's sdist into ``_fingerprint_table.py``.

The source is read the way tracebacks read it (``linecache``).  Where there is
none (an application frozen with only ``.pyc`` files) the fix is refused: we
never guess.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import linecache
import tokenize
from typing import Any, Iterator, List, Optional, Sequence, Tuple

_DROPPED = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER})
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ splits f-strings into tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


def source_fingerprint(lines: Sequence[str], first_line: int) -> str:
    """Fingerprint of the ``def`` (or decorated ``def``) starting at line ``first_line`` (1-based)."""
    block = inspect.getblock(lines[first_line - 1 :])
    digest = hashlib.sha256()
    for kind, text in _statement_tokens(block):
        digest.update(f"{kind}\x00{text}\x01".encode())
    return digest.hexdigest()[:16]


def _statement_tokens(block: Sequence[str]) -> Iterator[Tuple[str, str]]:
    """The tokens of ``block`` that carry meaning, with bare-string statements left out.

    The block's own indentation (a method sits one level in) is not part of it.
    """
    tokens = list(_tokens(block))
    outer = next((i for i, (kind, _) in enumerate(tokens) if kind != "INDENT"), len(tokens))
    if outer:
        tokens = tokens[outer:]
        closing = [i for i, (kind, _) in enumerate(tokens) if kind == "DEDENT"][-outer:]
        tokens = [token for i, token in enumerate(tokens) if i not in closing]
    statement: List[Tuple[str, str]] = []
    for kind, text in tokens:
        statement.append((kind, text))
        if kind in ("NEWLINE", "INDENT", "DEDENT"):
            if not _only_plain_strings(statement[:-1]):
                yield from statement
            elif kind != "NEWLINE":
                yield statement[-1]
            statement = []
    yield from statement


def _only_plain_strings(tokens: Sequence[Tuple[str, str]]) -> bool:
    """A docstring-like statement: string literals only, no f-string (those can call things)."""
    return bool(tokens) and all(kind == "STRING" and "f" not in _prefix(text) for kind, text in tokens)


def _prefix(literal: str) -> str:
    return literal[: min(i for i in (literal.find("'"), literal.find('"')) if i >= 0)].lower()


def _tokens(block: Sequence[str]) -> Iterator[Tuple[str, str]]:
    """(kind, text) of each significant token; an f-string is one STRING, as before Python 3.12."""
    readline = io.StringIO("".join(block)).readline
    depth = 0
    start: Tuple[int, int] = (0, 0)
    for token in tokenize.generate_tokens(readline):
        if token.type in _DROPPED:
            continue
        if token.type == _FSTRING_START:
            depth += 1
            if depth == 1:
                start = token.start
            continue
        if depth:
            if token.type == _FSTRING_END:
                depth -= 1
                if not depth:
                    yield "STRING", _text(block, start, token.end)
            continue
        if token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            yield tokenize.tok_name[token.type], ""  # where a line breaks or a block opens, not how wide
        else:
            yield tokenize.tok_name[token.type], token.string


def _text(block: Sequence[str], start: Tuple[int, int], end: Tuple[int, int]) -> str:
    (row1, col1), (row2, col2) = start, end
    if row1 == row2:
        return block[row1 - 1][col1:col2]
    return block[row1 - 1][col1:] + "".join(block[row1 : row2 - 1]) + block[row2 - 1][:col2]


def underlying_function(value: Any) -> Any:
    """The plain function behind a class attribute (a property's getter, a static/class method's function)."""
    if isinstance(value, property):
        return value.fget
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    return value


def function_fingerprint(value: Any) -> Tuple[Optional[str], str]:
    """``(fingerprint, "")`` of a class attribute's code, or ``(None, why it has none)``."""
    function = underlying_function(value)
    if type(function).__name__ != "function":
        return None, f"is a {type(value).__name__}, not the plain function aiohttp defines (wrapped or replaced?)"
    code = function.__code__
    lines = linecache.getlines(code.co_filename, function.__globals__)
    if not lines:
        return None, f"has no source to check ({code.co_filename} cannot be read: a frozen or .pyc-only install?)"
    try:
        return source_fingerprint(lines, code.co_firstlineno), ""
    except (tokenize.TokenError, IndentationError, SyntaxError, IndexError) as exc:
        return None, f"has source that cannot be read as Python ({exc})"


def recorded(fix_id: str, target: str, fingerprint: str, release: str) -> bool:
    """Was ``fingerprint`` recorded for ``target`` of ``fix_id`` in aiohttp ``release``?"""
    from ._fingerprint_table import TABLE
    from ._versions import RELEASE_INDEX

    position = RELEASE_INDEX[release]
    ranges = TABLE.get(fix_id, {}).get(target, {}).get(fingerprint, ())
    return any(RELEASE_INDEX[first] <= position <= RELEASE_INDEX[last] for first, last in ranges)
