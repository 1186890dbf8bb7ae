"""Fix ``paused-eof`` (aiohttp#10169): a connection paused by a large buffered body is resumed before it is pooled.

The end-to-end cases come from ``aiohttp_waiterfix._scenario_paused_eof`` (the
reproduction ``verify`` shows): a loopback keep-alive server, ``read_bufsize``
1024 and a 16 KiB body written in one write, so the read that pauses the
connection also carries the end of the body.  Every ``fix`` test fails on the
unpatched affected releases (3.8.0-3.11.10) and passes patched and from
3.11.11 on; the ones that only make sense with our wrapper skip elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import aiohttp
import pytest
from aiohttp import streams
from packaging.version import Version
from support import run  # conftest activated the fixes before anything imported aiohttp

from aiohttp_waiterfix._registry import PAUSED_EOF
from aiohttp_waiterfix._scenario_paused_eof import CaseResult, PausedEofConfig, run_case
from aiohttp_waiterfix._status import assess

VERSION = aiohttp.__version__
AFFECTED = assess(PAUSED_EOF, VERSION).affected
CONFIG = PausedEofConfig()
READ_BUFSIZE = CONFIG.read_bufsize
FROM_3_14 = Version(VERSION) >= Version("3.14.0")

upstream_3_14_rearms_sock_read = pytest.mark.xfail(
    FROM_3_14,
    reason="aiohttp 3.14.x's own hole (not in our patched range): since 3.14.0 a paused connection also pauses its "
    "parser, and draining the body finishes the message and pools the connection *inside* resume_reading(), "
    "which then re-arms sock_read on the pooled connection (C parser; the pure-Python one with length framing "
    "escapes it)",
    strict=False,
)


def case(name: str) -> CaseResult:
    result: CaseResult = run(run_case, name, CONFIG)
    return result


# ------------------------------------------------------------------ StreamReader


class FlowProtocol:
    """What StreamReader asks of its protocol (BaseProtocol's flow control): the flag, pause and resume.

    Records every call.  Not a real BaseProtocol: from 3.14 that one needs a
    parser and resumes differently; this stands for it on every release.
    """

    def __init__(self) -> None:
        self._reading_paused = False
        self.calls: List[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")
        self._reading_paused = True

    def resume_reading(self, *args: Any, **kwargs: Any) -> None:  # 3.14 passes resume_parser=False
        self.calls.append("resume")
        self._reading_paused = False


def stream_on(protocol: FlowProtocol) -> Any:
    return streams.StreamReader(protocol, READ_BUFSIZE, loop=asyncio.get_running_loop())  # type: ignore[arg-type]


@pytest.mark.fix("paused-eof")
def test_feed_eof_resumes_before_the_eof_callbacks() -> None:
    """The EOF callbacks pool the connection: they must find it resumed (upstream 3.11.11's order).

    Resuming after them would re-arm ResponseHandler's sock_read timer on a
    connection already in the pool; the drained-split case shows that end to end.
    """

    async def main() -> None:
        protocol = FlowProtocol()
        stream = stream_on(protocol)
        stream.feed_data(b"x" * (2 * READ_BUFSIZE + 1))  # past the high-water mark: pauses
        assert protocol.calls == ["pause"]
        seen: List[bool] = []
        stream.on_eof(lambda: seen.append(protocol._reading_paused))
        stream.feed_eof()
        assert seen == [False], "the EOF callbacks ran while the protocol was still paused"
        assert protocol.calls == ["pause", "resume"]
        assert stream.is_eof()

    run(main)


@pytest.mark.fix("paused-eof")
@pytest.mark.parametrize("name", ["unread", "unread-split"])
def test_an_unread_body_leaves_its_pooled_connection_able_to_read(name: str) -> None:
    """The first body is never read; the second request reuses the connection and gets its answer.

    Unpatched, the pooled connection stays paused and the second request hangs until its total timeout.
    """
    result = case(name)
    assert result.outcome == "ok", f"second request {result.outcome}: {result.detail}"
    assert result.paused_in_pool is False, "a connection was pooled while paused"
    if not FROM_3_14:  # 3.14+ parses the end of an unread paused body only when read: it closes that connection
        assert result.connections == 1, "the second request did not reuse the first one's connection"


@pytest.mark.fix("paused-eof")
@upstream_3_14_rearms_sock_read
@pytest.mark.parametrize("name", ["drained", "drained-split"])
def test_draining_a_body_arms_no_read_timer_on_its_pooled_connection(name: str) -> None:
    """The first body is read after its connection was pooled; later the connection is reused.

    Unpatched, that read resumes the pooled connection and re-arms the first
    request's sock_read timer on it; it fires while the connection idles and
    the second request fails at once.  ``drained-split`` (the connection is
    pooled from inside feed_eof) is the case that tells the order apart.
    """
    result = case(name)
    assert result.timer_in_pool is False, "a sock_read timer is armed on an idle pooled connection"
    assert result.outcome == "ok", f"second request {result.outcome}: {result.detail}"
    assert result.connections == 1, "the second request did not reuse the first one's connection"


@pytest.mark.fix("paused-eof")
def test_the_server_reads_the_next_request_after_an_unread_request_body() -> None:
    """aiohttp.web pauses its connections the same way: a handler that ignores a large body must not stall it."""
    result = case("server-unread")
    assert result.outcome == "ok", f"next request on the connection {result.outcome}: {result.detail}"
    assert result.paused_in_pool is False


def _scenario_child(env: Dict[str, str], *cases: str) -> Dict[str, Any]:
    args = [arg for name in cases for arg in ("--case", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "aiohttp_waiterfix._scenario_paused_eof", "--json", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    payload: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return payload


@pytest.mark.fix("paused-eof")
@pytest.mark.parametrize("parser", ["C", "pure-Python"])
def test_both_parsers_reach_the_fix(parser: str) -> None:
    """Both HTTP parsers end a body through StreamReader.feed_eof: the client's and aiohttp.web's, C and Python."""
    from aiohttp import http_parser

    if parser == "C" and os.environ.get("AIOHTTP_NO_EXTENSIONS"):
        pytest.skip("AIOHTTP_NO_EXTENSIONS is set: the C parser is off in this run")
    if parser == "C" and not hasattr(http_parser, "HttpResponseParserC"):
        pytest.skip("this aiohttp has no C parser (a pure-Python build)")
    result = _scenario_child(
        {"AIOHTTP_NO_EXTENSIONS": "1"} if parser == "pure-Python" else {}, "unread", "server-unread"
    )
    assert result["parser"] == parser
    assert result["clean"], [(c["case"], c["outcome"], c["detail"]) for c in result["cases"]]


# ------------------------------------------------------ guards (not tests of the fix)


@pytest.mark.skipif(FROM_3_14, reason="3.14 resumes at every end of body (harmless there: its resume checks the flags)")
def test_feed_eof_leaves_an_unpaused_protocol_alone() -> None:
    async def main() -> None:
        protocol = FlowProtocol()
        stream = stream_on(protocol)
        stream.feed_data(b"x" * 10)
        stream.feed_eof()
        assert protocol.calls == []
        assert stream.is_eof()

    run(main)


@pytest.mark.skipif(not AFFECTED, reason=f"aiohttp {VERSION} is not affected (3.11.11+ raises AttributeError here)")
def test_feed_eof_on_a_protocol_without_the_pause_flag_does_not_raise() -> None:
    """feed_data() reads ``_reading_paused`` only past the high-water mark, so such a protocol could always reach
    feed_eof() on the affected releases; the wrapper must not make it raise."""

    class Bare:
        transport = None

    async def main() -> None:
        stream = stream_on(Bare())  # type: ignore[arg-type]
        stream.feed_data(b"x" * 10)
        stream.feed_eof()
        assert stream.is_eof()

    run(main)


@pytest.mark.slow
def test_the_unpatched_release_hangs_in_this_reproduction() -> None:
    """The reproduction reproduces: unpatched, every case hangs or is poisoned (so the fix tests mean something)."""
    if not AFFECTED:
        pytest.skip(f"nothing to reproduce: {assess(PAUSED_EOF, VERSION).reason}")
    result = _scenario_child({"AIOHTTP_WAITERFIX": "0"})
    assert result["applied"] is False and result["affected"] is True
    outcomes = {c["case"]: c["outcome"] for c in result["cases"]}
    assert outcomes == {
        "unread": "hung",
        "unread-split": "hung",
        "drained": "poisoned",
        "drained-split": "poisoned",
        "server-unread": "hung",
    }, result["cases"]
    assert all(c["paused_in_pool"] for c in result["cases"]), "every case pools (or idles) a paused connection"
    assert all(c["timer_in_pool"] for c in result["cases"] if c["case"].startswith("drained"))
