"""The reproduction of aiohttp#10169 (``paused-eof``), written once for ``verify`` and the tests.

A response body larger than twice ``read_bufsize`` that arrives in the read
carrying its end pauses the connection, and on 3.8.0-3.11.10 nothing resumes
it before the connection goes back to the pool.  Each case makes a first
request on a loopback keep-alive connection, then a second one that must reuse
it (``limit=1``):

* ``unread``: the first body is never read.  The paused connection never reads
  the second response: the request **hangs** until its total timeout.
* ``drained``: the first body is read after the connection was pooled.  That
  read resumes the connection and re-arms the first request's ``sock_read``
  timer on the idle pooled connection; it fires and **poisons** it: the second
  request fails at once with a read timeout.
* ``-split`` variants: the server writes the body after the headers, so the
  connection is released from inside ``feed_eof()`` (the other order of the
  EOF callbacks).
* ``server-unread``: the same on the ``aiohttp.web`` side: a keep-alive POST
  whose handler ignores its body leaves the server's connection paused, and
  the next request on it is never answered.

Deterministic on loopback: ``read_bufsize=1024`` and a 16 KiB body written
with one ``write()`` arrive in one read.  Run it as ``python -m
aiohttp_waiterfix._scenario_paused_eof [--json]`` (``AIOHTTP_WAITERFIX=0`` for
the unpatched run); it prints one result per case, or one JSON object.
Importing this module imports no aiohttp: that happens when a case runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, cast

if TYPE_CHECKING:
    import aiohttp

FIX_ID = "paused-eof"
CLIENT_CASES = ("unread", "unread-split", "drained", "drained-split")
CASES = (*CLIENT_CASES, "server-unread")
OUTCOMES = ("ok", "hung", "poisoned", "error")


@dataclass(frozen=True)
class PausedEofConfig:
    body_size: int = 16 * 1024
    """Bytes of each body: more than ``2 * read_bufsize`` (the high-water mark) pauses the connection."""
    read_bufsize: int = 1024
    hang_limit: float = 1.0
    """The second request's total timeout: reaching it counts as hung."""
    sock_read: float = 0.2
    """``sock_read`` of the drained cases: a stale timer fires this long after the drain."""
    split_delay: float = 0.05
    """``-split`` cases: seconds between the headers and the body."""
    rounds: int = 1
    """Times each case runs."""


@dataclass
class CaseResult:
    case: str
    outcome: str = "error"
    """ok, hung (no answer within ``hang_limit``), poisoned (failed at once) or error."""
    detail: str = ""
    seconds: float = 0.0
    """How long the second request took."""
    paused_in_pool: Optional[bool] = None
    """The first request's connection was idle (pooled) but still paused."""
    timer_in_pool: Optional[bool] = None
    """Drained cases: a ``sock_read`` timer was armed on the pooled connection after the drain."""
    connections: int = 0
    """Connections the server accepted (1: the second request reused the first one's)."""
    answered: int = 0
    """Requests the server answered (2 when a hung client never read the second answer)."""


@dataclass
class PausedEofResult:
    aiohttp_version: str
    parser: str
    """``C`` or ``pure-Python`` (``AIOHTTP_NO_EXTENSIONS=1``)."""
    affected: Optional[bool]
    """This release has the bug (``None``: not a release we know)."""
    applied: bool
    """Our ``paused-eof`` fix was in place."""
    config: PausedEofConfig
    cases: List[CaseResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(case.outcome == outcome for case in self.cases)

    def as_json(self) -> Dict[str, Any]:
        payload = asdict(self)
        payload["fix"] = FIX_ID
        payload.update({outcome: self.count(outcome) for outcome in OUTCOMES})
        payload["requests"] = len(self.cases)
        payload["clean"] = self.clean
        return payload

    @property
    def clean(self) -> bool:
        """Every second request was answered."""
        return all(case.outcome == "ok" for case in self.cases)


# --------------------------------------------------------------------------- servers


class _RawServer(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: every request gets the same body, in one write (or two)."""

    def __init__(self, stats: Dict[str, Any], config: PausedEofConfig, split: bool) -> None:
        self.stats = stats
        self.config = config
        self.split = split
        self.buffer = b""
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.stats["connections"] += 1
        self.stats["transports"].append(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # GETs only: no request body
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.respond()

    def respond(self) -> None:
        assert self.transport is not None
        self.stats["answered"] += 1
        body = b"x" * self.config.body_size
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
        if self.split:
            self.transport.write(head)
            asyncio.get_running_loop().call_later(self.config.split_delay, self.transport.write, body)
        else:
            self.transport.write(head + body)


async def _raw_server(config: PausedEofConfig, split: bool) -> Any:
    stats: Dict[str, Any] = {"connections": 0, "answered": 0, "transports": []}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _RawServer(stats, config, split), "127.0.0.1", 0)
    return server, stats


def _pooled_protocols(session: aiohttp.ClientSession) -> List[Any]:
    connector: Any = session.connector
    return [entry[0] for entries in connector._conns.values() for entry in entries]


async def _buffered(content: aiohttp.StreamReader, limit: float = 10.0) -> None:
    """Wait until the body is at its end, or its connection is paused (nothing more comes until a read).

    Not ``wait_eof()``: from 3.14 a paused connection also pauses its parser,
    so the end of the body is only parsed once someone reads.
    """
    deadline = time.monotonic() + limit
    while not (content.is_eof() or getattr(content._protocol, "_reading_paused", False)):
        if time.monotonic() > deadline:
            raise asyncio.TimeoutError(f"the first body did not arrive within {limit} s")
        await asyncio.sleep(0.005)


def _timed_out(error: BaseException) -> bool:
    return isinstance(error, asyncio.TimeoutError)


def _classify(result: CaseResult, error: Optional[BaseException], started: float, limit: float) -> None:
    result.seconds = round(time.monotonic() - started, 3)
    if error is None:
        result.outcome = "ok"
        return
    result.detail = f"{type(error).__name__} after {result.seconds:.2f} s"
    if _timed_out(error) and result.seconds >= 0.9 * limit:
        result.outcome = "hung"
    elif _timed_out(error):
        result.outcome = "poisoned"
    else:
        result.outcome = "error"
        result.detail = f"{type(error).__name__}: {error} after {result.seconds:.2f} s"


# ----------------------------------------------------------------------------- cases


async def run_client_case(case: str, config: PausedEofConfig = PausedEofConfig()) -> CaseResult:
    """One client case (see ``CLIENT_CASES``) on the running loop."""
    import aiohttp

    drained = case.startswith("drained")
    result = CaseResult(case)
    server, stats = await _raw_server(config, split=case.endswith("-split"))
    url = "http://127.0.0.1:%d/" % server.sockets[0].getsockname()[1]
    first_timeout = aiohttp.ClientTimeout(total=10, sock_read=config.sock_read if drained else None)
    second_timeout = aiohttp.ClientTimeout(total=config.hang_limit, sock_read=config.sock_read if drained else None)
    try:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, read_bufsize=config.read_bufsize) as session:
            async with session.get(url, timeout=first_timeout) as resp:
                await _buffered(resp.content)  # nothing has read the body yet
                pooled = _pooled_protocols(session)
                result.paused_in_pool = any(proto._reading_paused for proto in pooled)
                if drained:
                    body = await resp.read()
                    assert len(body) == config.body_size, len(body)
                    pooled = _pooled_protocols(session)
                    result.timer_in_pool = any(proto._read_timeout_handle is not None for proto in pooled)
            if drained:
                await asyncio.sleep(2 * config.sock_read)  # a stale timer fires in here
            started = time.monotonic()
            error: Optional[BaseException] = None
            try:
                async with session.get(url, timeout=second_timeout) as resp2:
                    body = await resp2.read()
                    assert len(body) == config.body_size, len(body)
            except Exception as exc:  # classified below: this is what the case measures
                error = exc
            _classify(result, error, started, config.hang_limit)
    finally:
        for transport in stats["transports"]:
            transport.close()
        server.close()
        await server.wait_closed()
    result.connections = stats["connections"]
    result.answered = stats["answered"]
    return result


async def run_server_case(config: PausedEofConfig = PausedEofConfig()) -> CaseResult:
    """``server-unread``: an aiohttp.web handler ignores a large POST body; the next request on the connection."""
    from aiohttp import web

    result = CaseResult("server-unread")
    answered = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answered
        answered += 1
        return web.Response(text="served")  # the body is never read

    app = web.Application()
    app.router.add_route("*", "/", handler)
    runner = web.AppRunner(app, access_log=None, read_bufsize=config.read_bufsize)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    writer: Optional[asyncio.StreamWriter] = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b"x" * config.body_size
        head = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body)
        writer.write(head + body)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\nserved"), 10)
        server: Any = runner.server
        handlers = list(getattr(server, "connections", ()))
        result.connections = len(handlers)
        result.paused_in_pool = any(getattr(h, "_reading_paused", False) for h in handlers)
        started = time.monotonic()
        error: Optional[BaseException] = None
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\nserved"), config.hang_limit)
        except Exception as exc:  # classified below
            error = exc
        _classify(result, error, started, config.hang_limit)
    finally:
        if writer is not None:
            writer.close()
        await runner.cleanup()
    result.answered = answered
    return result


async def run_case(case: str, config: PausedEofConfig = PausedEofConfig()) -> CaseResult:
    """One case of ``CASES`` on the running loop."""
    if case == "server-unread":
        return await run_server_case(config)
    if case not in CLIENT_CASES:
        raise ValueError(f"unknown case {case!r}; known: {', '.join(CASES)}")
    return await run_client_case(case, config)


def parser_kind() -> str:
    """Which HTTP parser this aiohttp uses: ``C`` or ``pure-Python``."""
    from aiohttp import http_parser

    return "C" if http_parser.HttpResponseParser.__module__.endswith("._http_parser") else "pure-Python"


async def run_scenario(config: PausedEofConfig = PausedEofConfig(), cases: Sequence[str] = CASES) -> PausedEofResult:
    """Every case of ``cases``, ``config.rounds`` times, on the running loop."""
    import aiohttp

    import aiohttp_waiterfix
    from aiohttp_waiterfix._registry import PAUSED_EOF
    from aiohttp_waiterfix._status import assess, fix_applied

    result = PausedEofResult(
        aiohttp.__version__,
        parser_kind(),
        assess(PAUSED_EOF, aiohttp.__version__).affected,
        fix_applied(aiohttp_waiterfix.status(), FIX_ID),
        config,
    )
    for _ in range(config.rounds):
        for case in cases:
            result.cases.append(await run_case(case, config))
    return result


# ------------------------------------------------------------------------------ main


def describe(result: PausedEofResult) -> List[str]:
    """The result as text: a line per case, then the counts."""
    if result.applied:
        state = "patched"
    elif result.affected is False:
        state = "as is (fixed upstream, nothing to patch)"
    else:
        state = "unpatched"
    lines = [
        f"aiohttp {result.aiohttp_version} ({result.parser} parser), {state}: second request on a connection "
        f"pooled after a {result.config.body_size}-byte body (read_bufsize={result.config.read_bufsize})"
    ]
    for case in result.cases:
        notes = [case.detail] if case.detail else []
        if case.paused_in_pool is not None:
            notes.append(f"idle connection left paused: {'yes' if case.paused_in_pool else 'no'}")
        if case.timer_in_pool is not None:
            notes.append(f"stale read timer: {'yes' if case.timer_in_pool else 'no'}")
        lines.append(f"  {case.case:<14} {case.outcome:<9} {'; '.join(notes)}".rstrip())
    lines.append("  " + ", ".join(f"{result.count(outcome)} {outcome}" for outcome in OUTCOMES))
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Run the cases in this process; print a line per case or (``--json``) one JSON object.

    Exits 0 whenever the cases ran (a hung request is a result, not a failure of the run).
    """
    parser = argparse.ArgumentParser(prog="python -m aiohttp_waiterfix._scenario_paused_eof", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, default in asdict(PausedEofConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--case", action="append", choices=CASES, help="run only these cases (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = vars(parser.parse_args(argv))
    as_json, cases = args.pop("json"), args.pop("case") or CASES
    result = asyncio.run(run_scenario(PausedEofConfig(**args), cases))
    if as_json:
        print(json.dumps(result.as_json()))
    else:
        print("\n".join(describe(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
