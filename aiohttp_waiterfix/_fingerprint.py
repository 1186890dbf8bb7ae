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
import linecache
import re
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

# One pass of a small regex tokenizer, not the ``tokenize`` module: that is pure
# Python before 3.12, tokenizes f-strings differently from 3.12 on, and costs
# ~2 ms a method while the application imports aiohttp.  This one is the same
# on every Python and fast.  It needs only what tells statements apart: string
# literals whole (with their prefix, f-strings included), comments, line ends,
# words (names, keywords, numbers) and single operator characters.
_QUOTES = ("'''", '"""', "'", '"')
_STRING = (
    "[rRbBuUfF]{0,2}(?:"
    + "|".join(
        # a triple-quoted literal up to its closing quotes, escapes skipped; a short one within its line
        (q + r"(?:\\[\s\S]|[^\\])*?" + q) if len(q) == 3 else (q + r"(?:\\[\s\S]|[^\\\n" + q + "])*" + q)
        for q in _QUOTES
    )
    + ")"
)
_TOKEN = re.compile(
    rf"(?P<string>{_STRING})"
    r"|(?P<comment>#[^\r\n]*)"
    r"|(?P<newline>\r?\n)"
    r"|(?P<continuation>\\\r?\n)"
    r"|(?P<space>[ \t\f]+)"
    r"|(?P<word>\w+)"
    r"|(?P<op>\S)"
)
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")


def source_fingerprint(lines: Sequence[str], first_line: int) -> str:
    """Fingerprint of the ``def`` (or decorated ``def``) starting at line ``first_line`` (1-based).

    Raises ValueError when no ``def`` starts there (a lambda, or the wrong line).
    """
    logical = list(_logical_lines("".join(lines[first_line - 1 :])))
    header = next((tokens for _, tokens in logical if tokens[0] != ("op", "@")), [])
    if ("word", "def") not in header:
        raise ValueError(f"line {first_line} starts no def statement")
    digest = hashlib.sha256()
    for kind, text in _statements(logical):
        digest.update(f"{kind}\x00{text}\x01".encode())
    return digest.hexdigest()[:16]


def _logical_lines(source: str) -> Iterator[Tuple[int, List[Tuple[str, str]]]]:
    """``(indentation, tokens)`` of each logical line of the block that starts ``source``."""
    depth = 0
    indent: Optional[int] = None
    tokens: List[Tuple[str, str]] = []
    base: Optional[int] = None
    header_done = False
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup
        text = match.group()
        if kind == "space":
            if indent is None and depth == 0 and not tokens:
                indent = len(text.expandtabs(8))
            continue
        if kind in ("comment", "continuation"):
            continue
        if kind == "newline":
            if depth or not tokens:  # inside brackets, or a blank / comment-only line
                if not tokens:
                    indent = None
                continue
            assert indent is not None
            yield indent, tokens
            if ("word", "def") in tokens:
                header_done = True
            tokens, indent = [], None
            continue
        if indent is None:
            indent = 0
        if not tokens and depth == 0:  # the first token of a logical line
            if base is None:
                base = indent
            elif indent < base or (header_done and indent <= base):
                return  # the block has ended
        if text in _OPEN:
            depth += 1
        elif text in _CLOSE:
            depth -= 1
        tokens.append((str(kind), text))
    if tokens and indent is not None:
        yield indent, tokens


def _statements(lines: Iterable[Tuple[int, List[Tuple[str, str]]]]) -> Iterator[Tuple[str, str]]:
    """The tokens that carry meaning: block structure as INDENT/DEDENT, docstring-like lines left out."""
    stack: List[int] = []
    for indent, tokens in lines:
        if not stack:
            stack.append(indent)  # the block's own indentation is not part of it
        while indent < stack[-1]:
            stack.pop()
            yield "DEDENT", ""
        if indent > stack[-1]:
            stack.append(indent)
            yield "INDENT", ""
        if all(kind == "string" and "f" not in _prefix(text) for kind, text in tokens):
            continue  # only string literals: a docstring, does nothing (an f-string could call something)
        yield from tokens
        yield "NEWLINE", ""
    for _ in stack[1:]:
        yield "DEDENT", ""


def _prefix(literal: str) -> str:
    return literal[: min(i for i in (literal.find("'"), literal.find('"')) if i >= 0)].lower()


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
    except ValueError:
        return None, f"is not a function defined with def ({code.co_name}, {code.co_filename}:{code.co_firstlineno})"


def recorded(fix_id: str, target: str, fingerprint: str, release: str) -> bool:
    """Was ``fingerprint`` recorded for ``target`` of ``fix_id`` in aiohttp ``release``?"""
    from ._fingerprint_table import TABLE
    from ._versions import RELEASE_INDEX

    position = RELEASE_INDEX[release]
    ranges = TABLE.get(fix_id, {}).get(target, {}).get(fingerprint, ())
    return any(RELEASE_INDEX[first] <= position <= RELEASE_INDEX[last] for first, last in ranges)
