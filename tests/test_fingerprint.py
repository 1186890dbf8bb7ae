"""Fingerprints of the code a fix replaces: what they keep, what they ignore, and the table.

The table (``_fingerprint_table.py``) is recorded from the releases' sdists by
``tools/make_fingerprints.py``, which refuses to write it unless every Python
3.8-3.13 computes the same fingerprints.  Here, on whatever Python runs the
suite: the installed release's own functions must match the table, and the
fingerprint of a fixed text must be the constant recorded below (the same on
every Python, f-strings included, although Python 3.12 tokenizes them anew).
"""

from __future__ import annotations

import importlib
import linecache
import re
import textwrap
from typing import Any, Callable, Dict, Iterator

import pytest

import aiohttp_waiterfix

import aiohttp  # isort: skip

from aiohttp_waiterfix import _patcher
from aiohttp_waiterfix._fingerprint import function_fingerprint, recorded, source_fingerprint
from aiohttp_waiterfix._registry import FIXES, WAITERS
from aiohttp_waiterfix._status import assess

SAMPLE = '''\
class C:
    @property
    async def method(self, key: "Key", *, n: int = 3) -> str:
        """Docstring: ignored."""
        # a comment: ignored
        name = f"{key!r:>{n}} and {f'{n + 1}'}"
        if (n := n + 1) > 2:
            return rf"\\d{name}"  # trailing comment
        return "".join(
            [name,
             'x'])
'''
SAMPLE_FINGERPRINT = "e93b390c63e818e8"
"""Recorded once; the suite runs on Python 3.8-3.13 and must get it on each."""


def fingerprint_of(source: str) -> str:
    return source_fingerprint(textwrap.dedent(source).splitlines(keepends=True), 2)


def test_the_fingerprint_of_a_fixed_text_is_the_same_on_every_python() -> None:
    assert fingerprint_of(SAMPLE) == SAMPLE_FINGERPRINT


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("# a comment: ignored", "# another comment"),
        lambda s: s.replace("  # trailing comment", ""),
        lambda s: s.replace('"""Docstring: ignored."""', '"""Another docstring,\n        over two lines."""'),
        lambda s: s.replace("[name,\n             'x']", "[name, 'x']"),  # layout inside brackets
        lambda s: s.replace("        name = f", "\n\n        name = f"),  # blank lines
        lambda s: re.sub(r"(?m)^( +)", lambda m: " " * (len(m.group(1)) // 2), s),  # 2-space indentation
        lambda s: s + "\n    # the next method is not part of it\n    def other(self):\n        return 2\n",
    ],
    ids=["comment", "trailing-comment", "docstring", "line-breaks-in-brackets", "blank-lines", "indent-width", "next"],
)
def test_comments_docstrings_and_layout_do_not_count(edit: Callable[[str], str]) -> None:
    changed = edit(SAMPLE)
    assert changed != SAMPLE
    assert fingerprint_of(changed) == SAMPLE_FINGERPRINT


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("> 2", ">= 2"),
        lambda s: s.replace("n + 1)", "n + 2)"),
        lambda s: s.replace("{key!r:>{n}}", "{key!s:>{n}}"),  # inside an f-string
        lambda s: s.replace("'x'", "'y'"),
        lambda s: s.replace("n: int = 3", "n: int = 4"),
        lambda s: s.replace("    @property\n", ""),
        lambda s: s.replace("            return rf", "        return rf"),  # a statement moved out of its block
        lambda s: s.replace('"""Docstring: ignored."""', 'f"""Docstring: {n}"""'),  # an f-string can call things
    ],
    ids=["operator", "constant", "f-string", "string", "default", "decorator", "block", "f-string-statement"],
)
def test_any_changed_statement_counts(edit: Callable[[str], str]) -> None:
    changed = edit(SAMPLE)
    assert changed != SAMPLE
    assert fingerprint_of(changed) != SAMPLE_FINGERPRINT


# ------------------------------------------------------- this release's own code


def needed_changes() -> Dict[str, Any]:
    out = {}
    for fix in FIXES:
        if not assess(fix, aiohttp.__version__).affected:
            continue
        variant = _patcher.variant_for(fix, aiohttp.__version__)
        assert variant is not None
        for change in variant.changes:
            if change.fingerprinted:
                out[f"{fix.id}:{change.target}"] = (fix, change)
    return out


NEEDED = needed_changes()


@pytest.fixture
def unpatched() -> Iterator[None]:
    """aiohttp's own code for the test; the fixes as they were afterwards."""
    was_applied = bool(_patcher.applied_fixes())
    aiohttp_waiterfix.revert()
    yield
    if was_applied:
        assert aiohttp_waiterfix.apply().applied


@pytest.mark.skipif(not NEEDED, reason=f"aiohttp {aiohttp.__version__} needs none of our fixes")
@pytest.mark.parametrize("name", sorted(NEEDED))
def test_this_release_matches_the_recorded_fingerprint(name: str, unpatched: None) -> None:
    """Read from the installed aiohttp, on this Python: the recording (made with another) must hold."""
    fix, change = NEEDED[name]
    owner = getattr(importlib.import_module(change.module), change.owner)
    fingerprint, why = function_fingerprint(vars(owner)[change.name])
    assert fingerprint is not None, why
    assert recorded(fix.id, change.target, fingerprint, aiohttp.__version__)


def test_code_without_source_is_refused() -> None:
    """An application frozen with only .pyc files: no source, no guess."""
    namespace: Dict[str, Any] = {}
    exec(compile("def connect(self):\n    return 1\n", "<frozen aiohttp.connector>", "exec"), namespace)
    fingerprint, why = function_fingerprint(namespace["connect"])
    assert fingerprint is None and "no source" in why


def test_a_lambda_is_refused_with_a_reason() -> None:
    """A method replaced by a lambda written inside an indented block: refused, and the reason says why."""

    def make() -> Any:
        return lambda self: None

    fingerprint, why = function_fingerprint(make())
    assert fingerprint is None and "not a function defined with def" in why


def test_a_wrapped_method_is_refused() -> None:
    import functools

    from aiohttp.connector import BaseConnector

    wrapped = functools.partial(BaseConnector._release_waiter)
    fingerprint, why = function_fingerprint(wrapped)
    assert fingerprint is None and "not the plain function" in why


def test_an_edited_copy_of_a_method_is_refused_and_a_comment_is_not(unpatched: None) -> None:
    """The real check on a real method: a copy whose comment changed passes, one whose statement changed does not."""
    import inspect

    from aiohttp.connector import BaseConnector

    original = vars(BaseConnector)["_release_acquired"]
    source = textwrap.dedent(inspect.getsource(original))
    assert "self._release_waiter()" in source
    reference, _ = function_fingerprint(original)
    for edited, same in (
        (source.replace("\n", "  # a new comment\n", 1), True),
        (source.replace("self._release_waiter()", "self._release_waiter() or None"), False),
    ):
        filename = f"<edited {len(linecache.cache)}>"
        linecache.cache[filename] = (len(edited), None, edited.splitlines(keepends=True), filename)
        namespace: Dict[str, Any] = dict(vars(importlib.import_module("aiohttp.connector")))
        exec(compile(edited, filename, "exec"), namespace)
        fingerprint, _ = function_fingerprint(namespace["_release_acquired"])
        assert (fingerprint == reference) is same, edited


def test_every_fix_records_fingerprints_for_every_release_it_is_declared_for() -> None:
    from aiohttp_waiterfix._fingerprint_table import TABLE
    from aiohttp_waiterfix._versions import release_range

    for fix in FIXES:
        for variant in fix.variants:
            for change in variant.changes:
                if not change.fingerprinted:
                    continue
                recorded_releases = {
                    release
                    for ranges in TABLE[fix.id][change.target].values()
                    for first, last in ranges
                    for release in release_range(first, last)
                }
                missing = set(release_range(variant.first, variant.last)) - recorded_releases
                assert not missing, f"{fix.id} {change.target}: no fingerprint for {sorted(missing)}"
    assert WAITERS in FIXES
