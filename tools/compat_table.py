"""Generate the README's compatibility table from the records that nox test runs leave.

Usage: python3 tools/compat_table.py [RESULTS_DIR ...]   (default: .nox/_results, or $WAITERFIX_RESULTS_DIR)

Every run of our suite (``nox -s tests``, ``nox -s matrix``) writes one JSON record
(``testplan.write_record``): Python, aiohttp release, variant (wheel,
sdist-pure-python, ...), which fixes were applied, outcome and test counts.  This
merges the new records into ``docs/compatibility.json`` (committed, so the table
can be regenerated and reviewed) and rewrites the part of README.md between the
``compat-table`` markers.  The releases and the pairs left out of the matrix come
from ``tools/testplan.py``, as the matrix's do, so the two cannot disagree.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import testplan as plan

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(os.environ.get("WAITERFIX_RESULTS_DIR", str(ROOT / ".nox" / "_results")))
RECORDS = ROOT / "docs" / "compatibility.json"
README = ROOT / "README.md"
START, END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"

Record = Dict[str, object]
Key = Tuple[str, str, str]  # python, aiohttp, variant

# A full matrix run is better evidence than the default run's reduced one: keep the best per cell.
VARIANT_RANK = {"wheel": 3, "sdist-pure-python": 3, "wheel-reduced": 1, "sdist-pure-python-reduced": 1}


def key_of(record: Record) -> Key:
    return str(record["python"]), str(record["aiohttp"]), str(record["variant"])


def cell_of(record: Record) -> Tuple[str, str, str]:
    """The table cell a record fills: (python, aiohttp), or its own line for the pure-python and uvloop runs."""
    variant = str(record["variant"])
    return str(record["python"]), str(record["aiohttp"]), "" if variant in VARIANT_RANK else variant


def merge(old: Iterable[Record], new: Iterable[Record]) -> List[Record]:
    """New records replace every old one of their cell, whatever its variant; sorted by release, then Python.

    An old full run must not outrank a newer reduced run of the same cell: it tested older code.
    """
    new = list(new)
    renewed = {cell_of(record) for record in new}
    merged = {key_of(record): record for record in old if cell_of(record) not in renewed}
    merged.update({key_of(record): record for record in new})
    return [merged[key] for key in sorted(merged, key=lambda k: (plan.key(k[1]), plan.key(k[0]), k[2]))]


def read_results(dirs: Iterable[Path]) -> List[Record]:
    return [json.loads(path.read_text()) for d in dirs if d.is_dir() for path in sorted(d.glob("*.json"))]


def count(record: Record, outcome: str) -> int:
    counts = record.get("counts") or {}
    assert isinstance(counts, dict)
    return int(counts.get(outcome, 0))


ABBREVIATION = {fix.id: fix.id[0] for fix in plan.FIXES}
"""One letter per fix in the table's cells (w: waiters, p: paused-eof, ...)."""


def what_it_did(record: Record) -> str:
    fixes = record.get("fixes")
    if fixes is None:  # a record from before the fix registry: only the waiter fix existed
        fixes = ["waiters"] if record.get("patched") else []
    assert isinstance(fixes, list)
    return " ".join(ABBREVIATION.get(fix, fix) for fix in fixes) or "untouched"


def cell(record: Optional[Record], left_out: Optional[str]) -> str:
    """A table cell; ``left_out`` is the letter of the reason when the pair is left out of the matrix."""
    if record is None:
        return f"left out ({left_out})" if left_out else "not run"
    if record["outcome"] != "passed":
        return f"**FAILED** ({count(record, 'failed')} failed)"
    variant = str(record["variant"])
    marks = (" (sdist)" if variant.startswith("sdist") else "") + (" (reduced)" if variant.endswith("-reduced") else "")
    return f"{what_it_did(record)}, {count(record, 'passed')} ✓{marks}"


def render(records: List[Record]) -> str:
    minors: Tuple[str, ...] = tuple(plan.PYTHONS)
    left_out: Dict[Tuple[str, str], str] = plan.MATRIX_LEFT_OUT
    best: Dict[Tuple[str, str], Record] = {}
    extra: List[Record] = []
    for record in records:
        variant = str(record["variant"])
        if variant not in VARIANT_RANK:
            extra.append(record)  # pure-python and uvloop runs: listed under the table
            continue
        pair = (str(record["python"]), str(record["aiohttp"]))
        if pair not in best or VARIANT_RANK[variant] >= VARIANT_RANK[str(best[pair]["variant"])]:
            best[pair] = record

    letter_of = {reason: "abcdefgh"[number] for number, reason in enumerate(sorted(set(left_out.values())))}
    lines = ["| aiohttp | " + " | ".join(f"Python {m}" for m in minors) + " |", "|---" * (len(minors) + 1) + "|"]
    for release in plan.SUITE_RELEASES:
        cells = [cell(best.get((m, release)), letter_of.get(left_out.get((release, m), ""))) for m in minors]
        lines.append(f"| {release} | " + " | ".join(cells) + " |")

    runs = list(best.values()) + extra
    passed_runs = sum(1 for r in runs if r["outcome"] == "passed")
    tests = sum(count(r, "passed") for r in runs)
    minutes = sum(int(r.get("seconds", 0)) for r in runs) / 60  # type: ignore[call-overload]
    lines += [
        "",
        "Letters: the fixes applied ("
        + ", ".join(f"{letter}: `{fix}`" for fix, letter in ABBREVIATION.items())
        + "); untouched: none was needed. ✓: tests that passed in that run. "
        "(sdist): PyPI has no wheel for that Python; built from the sdist with `AIOHTTP_NO_EXTENSIONS=1` (pure "
        "Python). (reduced): the suite without the slow and the release-independent start-up suites, which run "
        "once per release, on its own Python (the cell without the mark). "
        + " ".join(f"({letter}) {reason}." for reason, letter in letter_of.items()),
        "",
    ]
    for record in sorted(extra, key=key_of):
        status = "passed" if record["outcome"] == "passed" else "**FAILED**"
        lines.append(
            f"- aiohttp {record['aiohttp']} on Python {record['python']}, {record['variant']}: "
            f"{what_it_did(record)}, {count(record, 'passed')} tests {status}."
        )
    lines += [
        *([""] if extra else []),
        f"In all: {passed_runs} of {len(runs)} runs passed, {tests:,} test passes, "
        f"{minutes:.0f} min of test time (records: [docs/compatibility.json](docs/compatibility.json)).",
    ]
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    dirs = [Path(a) for a in argv] or [RESULTS_DIR]
    old = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    records = merge(old, read_results(dirs))
    RECORDS.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    table = render(records)
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    README.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
