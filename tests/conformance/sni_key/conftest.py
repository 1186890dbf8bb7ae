"""Run aiohttp 3.14.1's own tests of the ``sni-key`` fix (aiohttp#12835) against a patched older release.

The upstream files are fetched at test time into ``upstream/`` by
``../fetch_upstream.py`` (nox does it).  They cannot be imported whole on an
older release: ``test_client_request.py`` imports the zlib backends of 3.12,
``test_client_functional.py`` ``DEFAULT_CHUNK_SIZE`` of 3.14, and 3.14.1's
``tests/conftest.py`` both.  So this conftest:

1. imports ``aiohttp_waiterfix`` so the fix is active, and stops the run if it
   is not (unless ``AIOHTTP_WAITERFIX=0`` asked for the unpatched run);
2. collects, from each upstream file, only the top-level definitions that
   ``source.EXTRACT`` names, compiled unmodified from the file's own text (same
   file name and line numbers, pytest's assertion rewriting, annotations left
   unevaluated as in ``from __future__ import annotations``), with the file's
   own imports of the names they use.  A name they use that this release lacks
   stops the run with the name: nothing is shimmed;
3. takes ``loop`` and ``aiohttp_server`` from the installed release's
   ``aiohttp.pytest_plugin``, as 3.14.1's ``tests/conftest.py`` does.

Run it with ``--confcutdir=tests/conformance/sni_key`` so the project's own
``tests/conftest.py`` stays out of the upstream run.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import sys
import types
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

import aiohttp
import aiohttp.connector
import pytest

# Import activation patches at once (aiohttp.connector is loaded already).
import aiohttp_waiterfix
from aiohttp_waiterfix._status import fix_applied

pytest_plugins = ("aiohttp.pytest_plugin",)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/conformance: harness.py
from harness import load, require_fix  # noqa: E402

UPSTREAM = HERE / "upstream"
FIX_ID = "sni-key"


SOURCE = load(HERE / "source.py")


# --------------------------------------------------------------------------- extracting upstream's definitions


def _names_used(node: ast.AST) -> Iterator[str]:
    """Global names a definition reads at run time: annotations left out (they are never evaluated)."""
    if isinstance(node, ast.arg):
        return  # its annotation only
    if isinstance(node, ast.AnnAssign):
        for child in (node.target, node.value):
            if child is not None:
                yield from _names_used(child)
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        yield node.id
    for field, value in ast.iter_fields(node):
        if field == "returns":
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from _names_used(child)


def _bound_inside(node: ast.AST) -> Set[str]:
    """Names a definition binds itself (arguments, assignments, imports, nested defs): not globals."""
    bound: Set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.arg):
            bound.add(child.arg)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            bound.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child is not node:
            bound.add(child.name)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in child.names)
    return bound


def _file_imports(tree: ast.Module, filename: str) -> Dict[str, Any]:
    """What the file's own top-level imports give on this release, one name at a time (a missing one is skipped)."""
    namespace: Dict[str, Any] = {}
    for statement in tree.body:
        if not isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        for alias in statement.names:
            single: ast.stmt = (
                ast.Import(names=[alias])
                if isinstance(statement, ast.Import)
                else ast.ImportFrom(module=statement.module, names=[alias], level=statement.level)
            )
            module = ast.fix_missing_locations(ast.copy_location(ast.Module(body=[single], type_ignores=[]), statement))
            try:
                exec(compile(module, filename, "exec", dont_inherit=True), namespace)
            except Exception:  # ImportError, or a name this release lacks: only fatal if a test uses it
                pass
    namespace.pop("__builtins__", None)
    return namespace


def extract(path: Path, wanted: List[str], config: Optional[pytest.Config]) -> types.ModuleType:
    """A module holding only ``wanted`` of ``path``'s top-level definitions, compiled from its own text."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    definitions = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in wanted
    }
    missing_definitions = [name for name in wanted if name not in definitions]
    if missing_definitions:
        raise pytest.UsageError(f"{path.name} of aiohttp {SOURCE.RELEASE} has no {', '.join(missing_definitions)}")
    selected = [definitions[name] for name in wanted]
    imports = _file_imports(tree, str(path))
    used: Set[str] = set()
    for node in selected:
        used |= set(_names_used(node)) - _bound_inside(node)
    unresolved = sorted(name for name in used - set(wanted) if name not in imports and not hasattr(builtins, name))
    if unresolved:
        raise pytest.UsageError(
            f"upstream {path.name} {', '.join(wanted)} need {', '.join(unresolved)}, "
            f"which aiohttp {aiohttp.__version__} (or this environment) lacks"
        )
    module_tree = ast.Module(body=list(selected), type_ignores=[])
    try:  # pytest's assertion rewriting, as for any test module (informative failures)
        from _pytest.assertion.rewrite import rewrite_asserts

        rewrite_asserts(module_tree, source.encode(), str(path), config)
    except ImportError:  # pragma: no cover - a pytest without it: plain asserts still fail the test
        pass
    code = compile(module_tree, str(path), "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    module = types.ModuleType(f"upstream_{SOURCE.RELEASE.replace('.', '_')}_{path.stem}")
    module.__file__ = str(path)
    module.__dict__.update({name: imports[name] for name in used if name in imports})
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module


class ExtractedModule(pytest.Module):
    """An upstream test file, collected as just the definitions ``source.EXTRACT`` names."""

    def _getobj(self) -> types.ModuleType:
        return extract(self.path, list(SOURCE.EXTRACT[self.path.name]), self.config)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Optional[pytest.Module]:
    if module_path.parent == UPSTREAM and module_path.name in SOURCE.EXTRACT:
        module: pytest.Module = ExtractedModule.from_parent(parent, path=module_path)
        return module
    return None


# --------------------------------------------------------------------------- the gate and the report


def pytest_configure(config: pytest.Config) -> None:
    absent = [name for name in SOURCE.TESTS if not (UPSTREAM / name).exists()]
    if absent:
        raise pytest.UsageError(
            f"tests/conformance/sni_key/upstream/ lacks {', '.join(absent)}: run `python "
            "tests/conformance/fetch_upstream.py tests/conformance/sni_key` (or `nox -s conformance`) to fetch "
            f"aiohttp {SOURCE.RELEASE}'s tests"
        )
    require_fix(FIX_ID)


def _summary() -> str:
    status = aiohttp_waiterfix.status()
    taken = "; ".join(f"{name}: {', '.join(names)}" for name, names in SOURCE.EXTRACT.items())
    return (
        f"conformance: upstream aiohttp {SOURCE.RELEASE} tests on aiohttp {aiohttp.__version__}, "
        f"{FIX_ID} applied={fix_applied(status, FIX_ID)}; extracted {taken}"
    )


def pytest_report_header(config: pytest.Config) -> List[str]:
    return [_summary(), f"waiterfix: {aiohttp_waiterfix.status().reason}"]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(_summary())  # also under -q, which hides the header
