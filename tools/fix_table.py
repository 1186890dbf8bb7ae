"""The README's table of fixes, made from their declarations (``_registry.FIXES``).

Usage: python tools/fix_table.py [--check]

Rewrites the block between ``<!-- fix-table:start -->`` and
``<!-- fix-table:end -->`` in README.md; ``--check`` only says whether it is
current (``tests/test_readme.py`` runs that check in every test run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp_waiterfix._registry import FIXES  # noqa: E402 (needs the sys.path entry above)

README = ROOT / "README.md"
START, END = "<!-- fix-table:start -->", "<!-- fix-table:end -->"


def render() -> str:
    lines = [
        "| fix | what goes wrong without it | upstream | patched on | fixed upstream in |",
        "|---|---|---|---|---|",
    ]
    for fix in FIXES:
        links = ", ".join(f"[#{link.rsplit('/', 1)[1]}]({link})" for link in fix.links)
        lines.append(
            f"| `{fix.id}` | {fix.title} | {links} | {fix.first_affected} – {fix.last_affected} | {fix.fixed_in} |"
        )
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    head, rest = text.split(START + "\n", 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + block + END + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's table is not current")
    args = parser.parse_args()
    text = README.read_text(encoding="utf-8")
    new = replace_block(text, render())
    if args.check:
        print(
            "README.md's fix table is current"
            if new == text
            else "README.md's fix table is stale: run tools/fix_table.py"
        )
        return 0 if new == text else 1
    README.write_text(new, encoding="utf-8")
    print("wrote the fix table into README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
