"""Coexistence with the aiohttp instrumentation users already run (issue 8).

OpenTelemetry's aiohttp-client instrumentation and ddtrace's aiohttp
integration patch aiohttp globally, so each case runs in a fresh subprocess
(tests/children/coexistence.py) that installs theirs and ours in one ordering:

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
By hand, ``coexistence_child("otel", "unpatched", "scenario")`` shows the
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
from typing import Any

import pytest
from childproc import run_child

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
    """What the child's environment gets instead of this process's DD_* and OTEL_* variables."""
    env = {
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
    if order in ("theirs-first", "unpatched"):
        env["AIOHTTP_WAITERFIX"] = "0"
    return env


def coexistence_child(tool: str, order: str, mode: str) -> dict[str, Any]:
    """Run one case in a fresh interpreter and return its findings (also used by hand)."""
    child = run_child(
        "coexistence.py", tool, order, mode, str(REQUESTS), env=_child_env(order), unset=("DD_*", "OTEL_*"), timeout=180
    )
    return child.payload


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
    found = coexistence_child(tool, order, mode)
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
    found = coexistence_child("ddtrace", "lazy-ours-first", "arrange")
    assert found["problems"] == [], json.dumps(found)
    assert found["connector_loader"] == "SourceFileLoader", json.dumps(found)
