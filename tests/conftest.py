"""Test configuration: activate the shim before anything imports aiohttp.

With ``AIOHTTP_WAITERFIX=0`` the import does not patch (the unpatched run);
on aiohttp >= 3.10.11 it never patches (fixed upstream).
"""

import os

import aiohttp_waiterfix  # import activation

if os.environ.get("WAITERFIX_TEST_UVLOOP") == "1":
    # `nox -s matrix` runs the suite once under uvloop: every asyncio.run() then uses it.
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

_MARKERS = {
    "fix": "behaviour aiohttp 3.10.11 has and unpatched 3.8.0-3.10.10 lack (fails unpatched)",
    "improvement": "waiterfix improvement over upstream 3.10.11 (fails unpatched and on 3.10.11)",
}


def pytest_configure(config):  # type: ignore[no-untyped-def]
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, description in _MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_report_header(config):  # type: ignore[no-untyped-def]
    import asyncio

    import aiohttp

    status = aiohttp_waiterfix.status()
    loop = type(asyncio.get_event_loop_policy()).__module__
    return f"aiohttp {aiohttp.__version__}; waiterfix applied={status.applied} ({status.reason}); loop policy: {loop}"
