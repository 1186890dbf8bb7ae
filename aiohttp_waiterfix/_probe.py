"""A fresh interpreter's start, seen from inside: run as a script, never imported.

``python -m aiohttp_waiterfix status`` and ``enable`` start ``python <this
file> [--import-aiohttp]`` so that they learn what an application started in
this environment gets, not what their own process did: which
``sitecustomize`` ran, whether it activated us and how, and (with
``--import-aiohttp``) what happened when aiohttp was imported.  Run by path,
this file does not import the package; only the interpreter's own start-up
(sitecustomize, the run wrapper) can.  Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


def run(env: Optional[Dict[str, str]] = None, import_aiohttp: bool = False, python: str = "") -> Dict[str, Any]:
    """Start ``python`` (default: this one) on this file and return its report.

    On failure the report has ``error`` (and no other facts).  Never raises.
    """
    import subprocess

    command = [python or sys.executable, os.path.abspath(__file__)] + (["--import-aiohttp"] if import_aiohttp else [])
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    except Exception as exc:
        return {"error": f"could not start {command[0]}: {exc!r}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"{command[0]} exited with {proc.returncode}", "stderr": proc.stderr.strip()[-2000:]}
    report: Dict[str, Any] = json.loads(lines[-1])
    report["stderr"] = proc.stderr.strip()[-2000:]
    return report


def main() -> None:
    del sys.path[0]  # this package's directory: an application does not have it on its path
    report: Dict[str, Any] = {
        "python": sys.executable,
        "sitecustomize": getattr(sys.modules.get("sitecustomize"), "__file__", None),
        "path": sys.path,
    }
    if "--import-aiohttp" in sys.argv:
        try:
            import aiohttp

            report["aiohttp_version"] = getattr(aiohttp, "__version__", None)
        except Exception as exc:
            report["aiohttp_error"] = repr(exc)
    startup = sys.modules.get("aiohttp_waiterfix._startup")
    report["pending_label"] = getattr(startup, "pending_label", None)
    shim = sys.modules.get("aiohttp_waiterfix")
    if shim is not None and "--import-aiohttp" in sys.argv:
        from dataclasses import asdict

        report["status"] = asdict(shim.status())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
