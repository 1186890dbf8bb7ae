"""End to end on the loopback: the issue's reproduction (aiohttp_waiterfix._scenario).

A slow period makes every held connection time out together with the waiters
woken for their slots; unpatched, the connector wedges and no request succeeds
afterwards.  The config is shorter than the issue's 4 s run but wedges more
reliably on a busy machine: a longer slow period and 60 workers (measured
unpatched under load: 20 of 20 runs wedged on 3.9.0, 3.9.5 and 3.10.10, against
14 of 19 on 3.10.10 with the issue's 30 workers and 1 s slow period).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import Any, Dict, List

import aiohttp
import pytest
from support import PATCHED, run

from aiohttp_waiterfix._registry import WAITERS
from aiohttp_waiterfix._scenario import ScenarioConfig, run_scenario
from aiohttp_waiterfix._status import assess

CONFIG = ScenarioConfig(duration=3, slow_period=1.5, late_after=2.2, workers=60)
WEDGE_ATTEMPTS = 3
"""The wedge is a race (a wake-up and a timeout in the same loop turn): it
nearly always happens, but a single run may miss it."""
SERVE_ATTEMPTS = 3
"""Runs a patched connector gets to answer late requests (only a starved machine needs a second)."""


def _scenario_in_process() -> Any:
    # aiohttp 3.9.0 leaks the CancelledError of its own timeouts; the scenario
    # can then end with that CancelledError (reported against _scenario.py).
    # Retry that crash only; anything else fails the test.
    for attempt in range(3):
        try:
            return run(run_scenario, CONFIG, timeout=CONFIG.duration + 20)
        except asyncio.CancelledError:
            if aiohttp.__version__ != "3.9.0" or attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.slow
@pytest.mark.fix("waiters")
def test_scenario_keeps_serving_after_the_slow_period() -> None:
    # Patched, the connector never wedges, but a starved process (a CPU shared by six test runs) can
    # see every 0.25 s request of one run time out. A wedge is for good: unpatched, all three fail.
    for _ in range(SERVE_ATTEMPTS):
        result = _scenario_in_process()
        if result.ok_late > 0:
            break
    assert result.applied == PATCHED
    assert result.ok_late > 0, f"wedged: no answer after {CONFIG.late_after} s ({result.ok_per_second} per second)"
    assert result.acquired_at_end == 0, "slots still held once every request ended"
    assert result.waiters_at_end == 0, "waiters still queued once every request ended"


def _run_unpatched_child() -> Dict[str, Any]:
    args: List[str] = []
    for name, value in asdict(CONFIG).items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    env = dict(os.environ, AIOHTTP_WAITERFIX="0")
    proc = subprocess.run(
        [sys.executable, "-m", "aiohttp_waiterfix._scenario", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=CONFIG.duration + 60,
    )
    if proc.returncode != 0:
        return {"crashed": proc.stderr.strip().splitlines()[-1:]}
    payload: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return payload


@pytest.mark.slow
def test_unpatched_release_wedges() -> None:
    """The reproduction reproduces: the same run without the patch wedges."""
    waiters = assess(WAITERS, aiohttp.__version__)
    if not waiters.affected:
        pytest.skip(f"nothing to reproduce: {waiters.reason}")
    outcomes = []
    for _ in range(WEDGE_ATTEMPTS):
        result = _run_unpatched_child()
        if "crashed" in result:
            outcomes.append(result)
            continue
        assert result["applied"] is False
        outcomes.append({"ok_late": result["ok_late"], "ok_per_second": result["ok_per_second"]})
        if result["ok_late"] == 0:
            return
    pytest.fail(f"unpatched aiohttp {aiohttp.__version__} did not wedge in {WEDGE_ATTEMPTS} runs: {outcomes}")
