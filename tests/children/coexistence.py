"""Child of tests/test_coexistence.py: our fixes next to OpenTelemetry's or ddtrace's aiohttp instrumentation.

    python coexistence.py TOOL ORDER MODE REQUESTS

* TOOL: ``otel``, ``ddtrace``, ``both`` (``none`` for checks by hand);
* ORDER: ``ours-first``, ``theirs-first``, ``lazy-ours-first``, ``lazy-theirs-first``
  (``unpatched`` for checks by hand, with ``AIOHTTP_WAITERFIX=0``);
* MODE: ``scenario`` (the issue's reproduction), ``requests`` (REQUESTS plain
  requests), ``arrange`` (only install both);
* REQUESTS: the plain requests made by the ``requests`` mode and after ``revert()``.

It prints one JSON object (its findings) as the last line of stdout, from an
exit handler registered before anything else, so that connections made by the
tools' own exit handlers are counted too.  The tools are optional and loaded
by name (``importlib``): to mypy their objects are ``Any``, installed or not.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import json
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

Theirs = Tuple[Callable[[], int], Callable[[], None]]
"""What installing a tool gives: (count its client spans of successful requests, remove it)."""
ClassDicts = Dict[str, Dict[str, Any]]


class Findings:
    """What the child reports (``out``), and the counters read once the patched run is done."""

    def __init__(self, tool: str, order: str) -> None:
        self.out: Dict[str, Any] = {"tool": tool, "order": order, "problems": [], "sockets": [], "server_ports": []}
        self.counters: Dict[str, Callable[[], int]] = {}

    def problem(self, text: str) -> None:
        self.out["problems"].append(text)

    def audit(self, event: str, args: Tuple[Any, ...]) -> None:
        if event == "socket.bind" and isinstance(args[1], tuple) and args[1][1]:
            self.out["server_ports"].append(args[1][1])  # servers this process started
        elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            address = args[1] if event == "socket.connect" else args[-1]
            self.out["sockets"].append([event, repr(address)])

    def report(self) -> None:
        print("\n" + json.dumps(self.out), flush=True)


def otel_install(findings: Findings) -> Theirs:
    aiohttp_client = importlib.import_module("opentelemetry.instrumentation.aiohttp_client")
    sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
    export = importlib.import_module("opentelemetry.sdk.trace.export")
    in_memory = importlib.import_module("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    span_kind = importlib.import_module("opentelemetry.trace").SpanKind

    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    instrumentor = aiohttp_client.AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def ok_spans() -> int:
        count = 0
        for span in exporter.get_finished_spans():
            attrs = span.attributes or {}
            code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
            count += span.kind == span_kind.CLIENT and code == 200
        return count

    return ok_spans, instrumentor.uninstrument


def ddtrace_install(findings: Findings) -> Theirs:
    ddtrace = importlib.import_module("ddtrace")
    trace = importlib.import_module("ddtrace.trace")

    spans: List[Any] = []

    def process_trace(self: Any, finished: List[Any]) -> None:
        spans.extend(finished)
        return None  # dropped here: nothing ever reaches ddtrace's writer

    # class Capture(TraceFilter), made with new_class: TraceFilter is Any to mypy, which refuses a class of Any
    capture = types.new_class("Capture", (trace.TraceFilter,), {}, lambda ns: ns.update(process_trace=process_trace))
    trace.tracer.configure(trace_processors=[capture()])
    ddtrace.patch(aiohttp=True)

    def ok_spans() -> int:
        return sum(s.name == "aiohttp.request" and s.get_tag("http.status_code") == "200" for s in spans)

    def uninstall() -> None:
        importlib.import_module("ddtrace.contrib.internal.aiohttp.patch").unpatch()

    findings.counters["ddtrace_connect_spans"] = lambda: sum(s.name.endswith(".connect") for s in spans)
    return ok_spans, uninstall


INSTALL: Dict[str, Callable[[Findings], Theirs]] = {"otel": otel_install, "ddtrace": ddtrace_install}


def watched_classes() -> List[type]:
    """ClientSession and the connectors (what the tools wrap), and every class a fix of ours changes."""
    import aiohttp
    from aiohttp.connector import BaseConnector, TCPConnector

    from aiohttp_waiterfix._registry import owners

    classes: List[type] = [aiohttp.ClientSession, BaseConnector, TCPConnector]
    for module, name in owners():
        try:
            owner = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # a class this release does not have
            continue
        if owner not in classes:
            classes.append(owner)
    return classes


def class_dicts() -> ClassDicts:
    return {cls.__name__: dict(vars(cls)) for cls in watched_classes()}


def changed(before: ClassDicts, after: ClassDicts) -> List[str]:
    names = []
    for cls, attrs in after.items():
        for name in sorted(set(attrs) | set(before[cls])):
            if attrs.get(name, None) is not before[cls].get(name, None):
                names.append(f"{cls}.{name}")
    return names


async def few_requests(n: int) -> Tuple[int, str]:
    """n GETs through a new session against a new loopback server; returns (ok, connector type)."""
    import aiohttp
    from aiohttp import web

    from aiohttp_waiterfix._scenario import free_port

    async def handler(request: web.Request) -> web.Response:
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


def arrange(findings: Findings, tools: Tuple[str, ...], order: str) -> Tuple[Dict[str, Theirs], Optional[ClassDicts]]:
    """Install theirs and ours in ``order``; returns (theirs, class dicts before ours or None)."""

    def install_theirs() -> Dict[str, Theirs]:
        return {tool: INSTALL[tool](findings) for tool in tools}

    # The order of the imports is the case: import_module(), which isort leaves where it is.
    theirs: Dict[str, Theirs] = {}
    before_ours = None
    if order == "ours-first":
        importlib.import_module("aiohttp_waiterfix")  # activation: waits for aiohttp.connector
        importlib.import_module("aiohttp")  # our import hook patches here
        theirs = install_theirs()
    elif order == "theirs-first":
        ours = importlib.import_module("aiohttp_waiterfix")  # with AIOHTTP_WAITERFIX=0 (set by the test): does nothing
        importlib.import_module("aiohttp")
        pristine = class_dicts()
        theirs = install_theirs()
        findings.out["wrapped_by_them"] = changed(pristine, class_dicts())
        before_ours = class_dicts()
        ours.apply()
    elif order in ("lazy-ours-first", "lazy-theirs-first"):
        # Both wait for aiohttp's import, ours fires inside it: ddtrace.patch()
        # only registers an import hook (before or after ours); OTel's
        # instrument() imports aiohttp, so it always comes after ours.
        if "aiohttp" in sys.modules:
            findings.problem("aiohttp was imported before the lazy ordering started")
        if order == "lazy-theirs-first" and "ddtrace" in tools:
            theirs.update(ddtrace=ddtrace_install(findings))
        importlib.import_module("aiohttp_waiterfix")
        if order == "lazy-ours-first" and "ddtrace" in tools:
            theirs.update(ddtrace=ddtrace_install(findings))
        if "otel" in tools:
            theirs.update(otel=otel_install(findings))
        importlib.import_module("aiohttp")
    elif order == "unpatched":
        # A control for checking by hand that the scenario still wedges
        # under their instrumentation when ours is off (AIOHTTP_WAITERFIX=0).
        importlib.import_module("aiohttp_waiterfix")
        importlib.import_module("aiohttp")
        theirs = install_theirs()
    else:
        raise SystemExit(f"unknown ordering {order}")
    return theirs, before_ours


def main() -> None:
    tool, order, mode, requests = sys.argv[1:5]
    findings = Findings(tool, order)
    sys.addaudithook(findings.audit)
    atexit.register(findings.report)
    out, problem = findings.out, findings.problem

    tools: Tuple[str, ...] = {"both": ("otel", "ddtrace"), "none": ()}.get(tool, (tool,))
    theirs, before_ours = arrange(findings, tools, order)

    import aiohttp
    import aiohttp.connector

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
            problem(f"{tool} changed {name} at class level")
    if mode == "arrange":
        return

    their_session_attrs = {name: vars(aiohttp.ClientSession)[name] for name in ("__init__", "_request")}
    out["their_wrappers"] = {name: type(obj).__name__ for name, obj in their_session_attrs.items()}
    ours_saved = [item for items in _patcher._installed.values() for item in items]
    if not ours_saved:
        problem("no originals recorded while the patch is applied")

    # (a) the deadlock stays fixed, (b) their spans appear
    if mode == "scenario":
        result = asyncio.run(run_scenario(ScenarioConfig(duration=4, slow_period=1, late_after=2.5)))
        out["scenario"] = {
            "ok_late": result.ok_late, "timeouts": result.timeouts, "errors": result.errors,
            "ok_per_second": result.ok_per_second, "applied": result.applied,
        }  # fmt: skip
        ok = result.ok
    else:
        ok, _ = asyncio.run(few_requests(int(requests)))
    out["patched_run"] = {"ok": ok, "spans": {name: ok_spans() for name, (ok_spans, _) in theirs.items()}}
    for name, count in findings.counters.items():
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

    spans_before = {name: ok_spans() for name, (ok_spans, _) in theirs.items()}
    ok, connector_type = asyncio.run(few_requests(int(requests)))
    out["after_revert"] = {
        "ok": ok,
        "connector_type": connector_type,
        "new_spans": {name: ok_spans() - spans_before[name] for name, (ok_spans, _) in theirs.items()},
    }

    # Their own removal still works after ours came and went (LIFO order).
    for name in reversed(list(theirs)):
        theirs[name][1]()
    for name in ("__init__", "_request"):
        if hasattr(vars(aiohttp.ClientSession)[name], "__wrapped__"):
            problem(f"ClientSession.{name} is still wrapped after their uninstrument/unpatch")


if __name__ == "__main__":
    main()
