"""Coexistence with the aiohttp instrumentation users already run (issue 8).

OpenTelemetry's aiohttp-client instrumentation and ddtrace's aiohttp
integration patch aiohttp globally, so each case runs in a fresh subprocess
(``CHILD``) that installs theirs and ours in one ordering:

* ``ours-first``: our import-time activation patches, then theirs is installed;
* ``theirs-first``: ``AIOHTTP_WAITERFIX=0``, theirs, then ``aiohttp_waiterfix.apply()``;
* ``lazy-ours-first`` / ``lazy-theirs-first``: both registered before aiohttp
  is imported, ours firing inside that import (start-up activation next to
  ``ddtrace-run``/``opentelemetry-instrument``; OTel's ``instrument()`` imports
  aiohttp itself, so only the first applies to it);

then (a) runs the issue's reproduction (``aiohttp_waiterfix._scenario``) and
needs late answers, (b) needs one of their client spans per successful
request, (c) calls ``revert()`` and needs their ``ClientSession`` wrappers to
be the same objects and still tracing, aiohttp's connector methods back, and
finally their own uninstrument/unpatch to leave aiohttp pristine.

With both tools at once the reproduction measures their cost, not ours: each
timed-out request formats a traceback in each tool (``record_exception``,
``set_exc_info``), the loop lags past the 0.25 s timeout and almost every
request fails, upstream's 3.10.11 included.  So ``both`` checks (b) and (c)
with a few plain requests instead.

The tools are optional: without them these tests skip.  Checked with
Python 3.11.7, aiohttp 3.10.10, opentelemetry-sdk 1.45.1,
opentelemetry-instrumentation-aiohttp-client 0.66b1, ddtrace 4.16.0, wrapt 2.5.2:
``pip install aiohttp==3.10.10 opentelemetry-sdk==1.45.1
opentelemetry-instrumentation-aiohttp-client==0.66b1 ddtrace==4.16.0``, run as
``pytest -p no:ddtrace tests/test_coexistence.py``: ddtrace's own pytest
plugin, loaded by default, connects to 127.0.0.1:8126 from the test process.
By hand, ``run_child("otel", "unpatched", "scenario")`` shows the
reproduction under their wrappers with ours off (the ``unpatched`` ordering).

No network: ddtrace's traces are captured by a ``TraceFilter`` that drops
them, so its writer has nothing to send; telemetry and remote configuration
are off, and its agent and statsd URLs are Unix socket paths that do not
exist (its native exporter still probes the agent's /info once it is built:
that fails with ENOENT).  An audit hook in the child records every Python
``connect``/``sendto``, and each must go to a server the child itself bound
on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest

OTEL_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation.aiohttp_client")
DDTRACE_MODULES = ("ddtrace",)
REQUIRED = {"otel": OTEL_MODULES, "ddtrace": DDTRACE_MODULES, "both": OTEL_MODULES + DDTRACE_MODULES, "none": ()}

CASES = [
    ("otel", "ours-first", "scenario"),
    ("otel", "theirs-first", "scenario"),
    ("otel", "lazy-ours-first", "scenario"),
    ("ddtrace", "ours-first", "scenario"),
    ("ddtrace", "theirs-first", "scenario"),
    ("ddtrace", "lazy-ours-first", "scenario"),
    ("ddtrace", "lazy-theirs-first", "scenario"),
    ("both", "ours-first", "requests"),
    ("both", "theirs-first", "requests"),
    ("both", "lazy-theirs-first", "requests"),
]

REQUESTS = 3
"""Plain requests made by the ``requests`` mode and after ``revert()``."""

# The child process.  argv: tool (otel, ddtrace, both; none for manual checks),
# ordering (ours-first, theirs-first, lazy-ours-first, lazy-theirs-first;
# unpatched for manual checks), mode (scenario, requests, arrange).
# It prints one JSON object (its findings) as the last line of stdout, from an
# exit handler registered before anything else, so that connections made by
# the tools' own exit handlers are counted too.
CHILD = r'''
import asyncio
import atexit
import json
import sys

TOOL, ORDER, MODE = sys.argv[1:4]
TOOLS = {"both": ("otel", "ddtrace"), "none": ()}.get(TOOL, (TOOL,))
out = {"tool": TOOL, "order": ORDER, "problems": [], "sockets": [], "server_ports": []}


def audit(event, args):
    if event == "socket.bind" and isinstance(args[1], tuple) and args[1][1]:
        out["server_ports"].append(args[1][1])  # servers this process started
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1] if event == "socket.connect" else args[-1]
        out["sockets"].append([event, repr(address)])


sys.addaudithook(audit)
COUNTERS = {}
atexit.register(lambda: print("\n" + json.dumps(out), flush=True))


def problem(text):
    out["problems"].append(text)


def otel_install():
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def ok_spans():
        count = 0
        for span in exporter.get_finished_spans():
            attrs = span.attributes or {}
            code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
            count += span.kind == SpanKind.CLIENT and code == 200
        return count

    return ok_spans, instrumentor.uninstrument


def ddtrace_install():
    import ddtrace
    from ddtrace.trace import TraceFilter, tracer

    spans = []

    class Capture(TraceFilter):
        def process_trace(self, trace):
            spans.extend(trace)
            return None  # dropped here: nothing ever reaches ddtrace's writer

    tracer.configure(trace_processors=[Capture()])
    ddtrace.patch(aiohttp=True)

    def ok_spans():
        return sum(s.name == "aiohttp.request" and s.get_tag("http.status_code") == "200" for s in spans)

    def uninstall():
        from ddtrace.contrib.internal.aiohttp.patch import unpatch

        unpatch()

    COUNTERS["ddtrace_connect_spans"] = lambda: sum(s.name.endswith(".connect") for s in spans)
    return ok_spans, uninstall


INSTALL = {"otel": otel_install, "ddtrace": ddtrace_install}


def install_theirs():
    return {tool: INSTALL[tool]() for tool in TOOLS}


def class_dicts():
    import aiohttp
    from aiohttp.connector import BaseConnector, TCPConnector

    return {cls.__name__: dict(vars(cls)) for cls in (aiohttp.ClientSession, BaseConnector, TCPConnector)}


def changed(before, after):
    names = []
    for cls, attrs in after.items():
        for name in sorted(set(attrs) | set(before[cls])):
            if attrs.get(name, None) is not before[cls].get(name, None):
                names.append(f"{cls}.{name}")
    return names


async def few_requests(n):
    """n GETs through a new session against a new loopback server; returns (ok, connector type)."""
    import aiohttp
    from aiohttp import web

    from aiohttp_waiterfix._scenario import free_port

    async def handler(request):
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ok = 0
    try:
        async with aiohttp.ClientSession() as session:
            kind = type(session._connector).__name__
            for _ in range(n):
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    await resp.read()
                    ok += resp.status == 200
    finally:
        await runner.cleanup()
    return ok, kind


def arrange():
    """Install theirs and ours in ORDER; returns (theirs, class dicts before ours or None)."""
    theirs, before_ours = {}, None
    if ORDER == "ours-first":
        import aiohttp_waiterfix  # noqa: F401  (activation: waits for aiohttp.connector)
        import aiohttp  # noqa: F401  (our import hook patches here)

        theirs = install_theirs()
    elif ORDER == "theirs-first":
        import aiohttp_waiterfix  # with AIOHTTP_WAITERFIX=0 (set by the test): does nothing
        import aiohttp  # noqa: F401

        pristine = class_dicts()
        theirs = install_theirs()
        out["wrapped_by_them"] = changed(pristine, class_dicts())
        before_ours = class_dicts()
        aiohttp_waiterfix.apply()
    elif ORDER in ("lazy-ours-first", "lazy-theirs-first"):
        # Both wait for aiohttp's import, ours fires inside it: ddtrace.patch()
        # only registers an import hook (before or after ours); OTel's
        # instrument() imports aiohttp, so it always comes after ours.
        if "aiohttp" in sys.modules:
            problem("aiohttp was imported before the lazy ordering started")
        if ORDER == "lazy-theirs-first" and "ddtrace" in TOOLS:
            theirs.update(ddtrace=ddtrace_install())
        import aiohttp_waiterfix  # noqa: F401
        if ORDER == "lazy-ours-first" and "ddtrace" in TOOLS:
            theirs.update(ddtrace=ddtrace_install())
        if "otel" in TOOLS:
            theirs.update(otel=otel_install())
        import aiohttp  # noqa: F401
    elif ORDER == "unpatched":
        # A control for checking by hand that the scenario still wedges
        # under their instrumentation when ours is off (AIOHTTP_WAITERFIX=0).
        import aiohttp_waiterfix  # noqa: F401
        import aiohttp  # noqa: F401

        theirs = install_theirs()
    else:
        raise SystemExit(f"unknown ordering {ORDER}")
    return theirs, before_ours


def main():
    theirs, before_ours = arrange()

    import aiohttp
    import aiohttp.connector
    from aiohttp.connector import BaseConnector

    import aiohttp_waiterfix
    from aiohttp_waiterfix import _patcher
    from aiohttp_waiterfix._scenario import ScenarioConfig, run_scenario

    out["connector_loader"] = type(aiohttp.connector.__loader__).__name__
    status = aiohttp_waiterfix.status()
    out["status"] = {"applied": status.applied, "reason": status.reason, "activated_by": status.activated_by}
    if not status.applied:
        problem(f"our patch is not applied: {status.reason}")
    for name in out.get("wrapped_by_them", ()):
        if not name.startswith("ClientSession."):
            problem(f"{TOOL} changed {name} at class level")
    if MODE == "arrange":
        return

    their_session_attrs = {name: vars(aiohttp.ClientSession)[name] for name in ("__init__", "_request")}
    out["their_wrappers"] = {name: type(obj).__name__ for name, obj in their_session_attrs.items()}
    ours_saved = [item for items in _patcher._installed.values() for item in items]
    if not ours_saved:
        problem("no originals recorded while the patch is applied")

    # (a) the deadlock stays fixed, (b) their spans appear
    if MODE == "scenario":
        result = asyncio.run(run_scenario(ScenarioConfig(duration=4, slow_period=1, late_after=2.5)))
        out["scenario"] = {
            "ok_late": result.ok_late, "timeouts": result.timeouts, "errors": result.errors,
            "ok_per_second": result.ok_per_second, "applied": result.applied,
        }
        ok = result.ok
    else:
        ok, _ = asyncio.run(few_requests(__N__))
    out["patched_run"] = {"ok": ok, "spans": {tool: ok_spans() for tool, (ok_spans, _) in theirs.items()}}
    for name, count in COUNTERS.items():
        out[name] = count()

    # (c) revert: their wrappers stay (same objects), aiohttp's methods come back
    reverted = aiohttp_waiterfix.revert()
    out["reverted"] = {"applied": reverted.applied, "reason": reverted.reason}
    for name, obj in their_session_attrs.items():
        if vars(aiohttp.ClientSession)[name] is not obj:
            problem(f"revert() replaced ClientSession.{name}")
    for item in ours_saved:
        if vars(item.owner).get(item.name, _patcher._ABSENT) is not item.original:
            problem(f"revert() did not restore {item.owner.__name__}.{item.name}")
    if before_ours is not None:
        left = changed(before_ours, class_dicts())
        if left:
            problem(f"after revert() these differ from before apply(): {left}")

    spans_before = {tool: ok_spans() for tool, (ok_spans, _) in theirs.items()}
    ok, connector_type = asyncio.run(few_requests(__N__))
    out["after_revert"] = {
        "ok": ok,
        "connector_type": connector_type,
        "new_spans": {tool: ok_spans() - spans_before[tool] for tool, (ok_spans, _) in theirs.items()},
    }

    # Their own removal still works after ours came and went (LIFO order).
    for tool in reversed(list(theirs)):
        theirs[tool][1]()
    for name in ("__init__", "_request"):
        if hasattr(vars(aiohttp.ClientSession)[name], "__wrapped__"):
            problem(f"ClientSession.{name} is still wrapped after their uninstrument/unpatch")


main()
'''


def _missing(tool: str) -> list[str]:
    # find_spec, not importorskip: the tools must not be imported (and must
    # not patch aiohttp) in the test process; everything runs in children.
    missing = []
    for name in REQUIRED[tool]:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ImportError:
            missing.append(name)
    return missing


def _child_env(order: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_"))}
    env.update(
        {
            # ddtrace: no agent, no telemetry, no remote configuration.  Its
            # native exporter probes the agent's /info when it is built; a
            # Unix socket path that does not exist makes that fail locally.
            "DD_TRACE_AGENT_URL": "unix:///nonexistent/aiohttp-waiterfix-test/apm.socket",
            "DD_DOGSTATSD_URL": "unix:///nonexistent/aiohttp-waiterfix-test/dsd.socket",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_TRACE_STARTUP_LOGS": "false",
            "DD_RUNTIME_METRICS_ENABLED": "false",
            "DD_CRASHTRACKING_ENABLED": "false",
        }
    )
    if order in ("theirs-first", "unpatched"):
        env["AIOHTTP_WAITERFIX"] = "0"
    return env


def run_child(tool: str, order: str, mode: str) -> dict[str, Any]:
    """Run one case in a fresh interpreter and return its findings (also used by hand)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.replace("__N__", str(REQUESTS)), tool, order, mode],
        env=_child_env(order),
        capture_output=True,
        check=False,
        text=True,
        timeout=180,
    )
    try:
        found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        pytest.fail(f"child printed no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"child exited {proc.returncode}: {json.dumps(found)}\n{proc.stderr[-4000:]}")
    return found


def _skip_unless_installed(tool: str) -> None:
    missing = _missing(tool)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def _assert_loopback_only(found: dict[str, Any]) -> None:
    allowed = {repr(("127.0.0.1", port)) for port in found["server_ports"]}
    stray = [s for s in found["sockets"] if s[1] not in allowed]
    assert stray == [], f"connections to anything but our own loopback servers: {stray[:10]}"


@pytest.mark.parametrize(("tool", "order", "mode"), CASES, ids=[f"{t}-{o}" for t, o, _ in CASES])
def test_coexistence(tool: str, order: str, mode: str) -> None:
    _skip_unless_installed(tool)
    found = run_child(tool, order, mode)
    summary = json.dumps({k: v for k, v in found.items() if k != "sockets"})

    assert found["problems"] == [], summary
    assert found["status"]["applied"], summary
    # (a) the deadlock stays fixed under their wrappers
    if mode == "scenario":
        assert found["scenario"]["applied"], summary
        assert found["scenario"]["ok_late"] > 0, summary
    # (b) one of their client spans per successful request
    run = found["patched_run"]
    assert run["ok"] > 0, summary
    for name, spans in run["spans"].items():
        assert spans >= run["ok"], f"{name}: {summary}"
    if "ddtrace_connect_spans" in found:
        assert found["ddtrace_connect_spans"] > 0, summary
    # (c) after revert() their wrappers are in place and still trace
    assert not found["reverted"]["applied"], summary
    after = found["after_revert"]
    assert after["ok"] == REQUESTS, summary
    for name, spans in after["new_spans"].items():
        assert spans >= REQUESTS, f"{name}: {summary}"
    if tool in ("ddtrace", "both"):
        assert after["connector_type"] == "_WrappedConnectorClass", summary
    _assert_loopback_only(found)


def test_loader_restored_under_ddtrace_watchdog() -> None:
    """Our import hook must leave aiohttp's own loader in place, even under ddtrace's watchdog."""
    _skip_unless_installed("ddtrace")
    found = run_child("ddtrace", "lazy-ours-first", "arrange")
    assert found["problems"] == [], json.dumps(found)
    assert found["connector_loader"] == "SourceFileLoader", json.dumps(found)
