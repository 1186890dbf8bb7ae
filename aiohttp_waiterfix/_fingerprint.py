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
    r"[ \t\f]*(?:"  # each match takes the blanks before it: a line's first match measures its indentation
    rf"(?P<s>{_STRING})"
    r"|(?P<n>(?:#[^\r\n]*)?\r?\n)"  # a line end, after its comment if any
    r"|(?P<c>\\\r?\n|#[^\r\n]*)"  # a backslash continuation; a comment at the very end
    # A run of words and operators up to a string, a comment or the line's end, split in C rather than token by
    # token.  It takes a string's prefix too (f in f"..."): the string gets it back below.
    r"""|(?P<r>[^\s'"#\\]+(?:[ \t\f]+[^\s'"#\\]+)*)"""
    r")"
)
_PREFIXES = frozenset({"r", "u", "f", "b", "br", "rb", "fr", "rf"})
_WORD_OR_OPERATOR = re.compile(r"\w+|\S")
_OPEN, _CLOSE = "([{", ")]}"

Line = Tuple[int, List[str], bool]
"""A logical line: its indentation, its tokens' texts, and whether it is only plain string literals."""


def source_fingerprint(lines: Sequence[str], first_line: int) -> str:
    """Fingerprint of the ``def`` (or decorated ``def``) starting at line ``first_line`` (1-based).

    Raises ValueError when no ``def`` starts there (a lambda, or the wrong line).
    """
    logical = list(_logical_lines("".join(lines[first_line - 1 :])))
    header = next((tokens for _, tokens, _ in logical if tokens[0] != "@"), [])
    if "def" not in header:
        raise ValueError(f"line {first_line} starts no def statement")
    digest = hashlib.sha256()
    for part in _statements(logical):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _logical_lines(source: str) -> Iterator[Line]:
    """Each logical line of the block that starts ``source``.

    Token texts tell their kind apart on their own (a string keeps its quotes),
    so only the texts are kept.  Hot: it runs while the application imports aiohttp.
    """
    depth = 0
    indent = 0
    tokens: List[str] = []
    plain_strings = True
    base: Optional[int] = None
    header_done = False
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or ""  # every alternative is a named group
        if kind == "n":
            if depth or not tokens:  # inside brackets, or a blank / comment-only line
                continue
            yield indent, tokens, plain_strings
            if not header_done and "def" in tokens:
                header_done = True
            tokens, plain_strings = [], True
            continue
        if kind == "c":
            continue
        start = match.start(kind)
        text = source[start : match.end()]
        if not tokens and depth == 0:  # the first token of a logical line: the first on its physical line
            indent = len(source[match.start() : start].expandtabs(8))
            if base is None:
                base = indent
            elif indent < base or (header_done and indent <= base):
                return  # the block has ended
        if kind == "s":
            if start == match.start() and tokens and tokens[-1].lower() in _PREFIXES and source[start - 1].isalpha():
                text = tokens.pop() + text  # the prefix the run took: f"..." is one token
            if plain_strings and "f" in _prefix(text):
                plain_strings = False  # an f-string can call something
            tokens.append(text)
        else:
            plain_strings = False
            if "(" in text or ")" in text or "[" in text or "]" in text or "{" in text or "}" in text:
                depth += sum(map(text.count, _OPEN)) - sum(map(text.count, _CLOSE))
            tokens += _WORD_OR_OPERATOR.findall(text)
    if tokens:
        yield indent, tokens, plain_strings


def _statements(lines: Iterable[Line]) -> Iterator[str]:
    """What is hashed: each statement's tokens, the block structure; docstring-like lines left out."""
    stack: List[int] = []
    for indent, tokens, plain_strings in lines:
        if not stack:
            stack.append(indent)  # the block's own indentation is not part of it
        while indent < stack[-1]:
            stack.pop()
            yield "\x02DEDENT"
        if indent > stack[-1]:
            stack.append(indent)
            yield "\x02INDENT"
        if plain_strings:
            continue  # only string literals: a docstring, does nothing
        yield "\x02" + "\x00".join(tokens)
    for _ in stack[1:]:
        yield "\x02DEDENT"


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
