"""The ``sni-key`` fix: a pooled TLS connection is only reused for the ``server_hostname`` it was verified for.

``@pytest.mark.fix("sni-key")`` tests fail on unpatched 3.9.0-3.14.0 (the
override is not part of the pool key, so ``b.test`` reuses ``a.test``'s
connection) and pass patched and on 3.14.1+, where upstream fixed it.  On 3.8.x
(no per-request ``server_hostname``) every test here is skipped.

Three levels: the key alone (real ``ClientRequest`` objects), the pool (a
``BaseConnector`` with a fake ``_create_connection``), and end to end over TLS
on the loopback, directly and through a CONNECT proxy, with a ``trustme``
certificate valid only for ``a.test`` (skipped if trustme is not installed).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import pytest
from aiohttp.client_exceptions import ClientConnectorCertificateError
from aiohttp.client_reqrep import ClientRequest, ConnectionKey
from packaging.version import Version
from support import make_connector, run
from yarl import URL

import aiohttp_waiterfix
from aiohttp_waiterfix._registry import SNI_KEY
from aiohttp_waiterfix._status import assess, fix_applied

_ASSESSED = assess(SNI_KEY, aiohttp.__version__)
pytestmark = pytest.mark.skipif(
    _ASSESSED.affected is False and Version(aiohttp.__version__) < Version(SNI_KEY.fixed_in),
    reason=f"{_ASSESSED.reason}: no per-request server_hostname",
)

TLS_URL = URL("https://127.0.0.1:8443/")


def make_request(url: URL = TLS_URL, **kwargs: Any) -> ClientRequest:
    """A real request (inside the running loop), as ClientSession builds it."""
    return ClientRequest("GET", url, loop=asyncio.get_running_loop(), **kwargs)


def key_of(url: URL = TLS_URL, **kwargs: Any) -> Any:
    return make_request(url, **kwargs).connection_key


def without_proxy(key: Any) -> Any:
    """The key ``_create_proxy_connection`` builds for the CONNECT tunnel: the same key without the proxy."""
    if hasattr(key, "_replace"):  # NamedTuple keys, 3.11+
        return key._replace(proxy=None, proxy_auth=None, proxy_headers_hash=None)
    import attr  # attrs keys, 3.9-3.10

    return attr.evolve(key, proxy=None, proxy_auth=None, proxy_headers_hash=None)


# ----------------------------------------------------------------------------- the key


@pytest.mark.fix("sni-key")
def test_the_key_holds_the_server_hostname() -> None:
    async def main() -> None:
        plain, a, b = key_of(), key_of(server_hostname="a.test"), key_of(server_hostname="b.test")
        a_again = key_of(server_hostname="a.test")
        assert a == a_again and hash(a) == hash(a_again), "the same name must share the pool"
        assert a != b, "a connection verified for a.test must not serve b.test"
        assert a != plain and plain != a, "nor a request that verifies the host itself"
        assert len({plain: 0, a: 1, a_again: 2, b: 3}) == 3
        assert a.server_hostname == "a.test"
        assert (a.host, a.port, a.is_ssl) == ("127.0.0.1", 8443, True)
        # Through a proxy the tunnel's key is rebuilt without the proxy: the name must survive that.
        proxied = key_of(server_hostname="a.test", proxy=URL("http://127.0.0.1:3128"))
        assert proxied != a
        assert without_proxy(proxied) == a and without_proxy(proxied) != b
        # Error messages read host, port and ssl from the key: unchanged.
        error = ClientConnectorCertificateError(a, Exception("certificate verify failed"))
        assert (error.host, error.port) == ("127.0.0.1", 8443) and "127.0.0.1:8443" in str(error)

    run(main)


def test_requests_without_a_tls_override_keep_the_release_key() -> None:
    """The common path: no override, or plain HTTP, gets the release's own key (our fix; 3.14.1 splits HTTP too)."""

    async def main() -> None:
        plain = key_of()
        assert type(plain) is ConnectionKey
        http_url = URL("http://127.0.0.1:8080/")
        http_override = key_of(http_url, server_hostname="a.test")
        assert type(http_override) is ConnectionKey
        if fix_applied(aiohttp_waiterfix.status(), "sni-key"):
            assert http_override == key_of(http_url), "the override only matters for TLS"

    run(main)


# ---------------------------------------------------------------------------- the pool


@pytest.mark.fix("sni-key")
def test_the_pool_keeps_connections_apart_by_server_hostname() -> None:
    async def main() -> None:
        connector, creator = make_connector(limit=1, limit_per_host=1)
        timeout = aiohttp.ClientTimeout()
        got = []
        try:
            for name in ("a.test", "b.test", "a.test", None):
                request = make_request() if name is None else make_request(server_hostname=name)
                connection = await connector.connect(request, [], timeout)
                got.append(connection.protocol)
                connection.release()
        finally:
            await connector.close()
        assert got[1] is not got[0], "b.test was handed a.test's pooled connection"
        assert got[3] not in (got[0], got[1]), "a request without an override was handed an override's connection"
        assert got[2] is got[0], "a.test again reuses its own pooled connection"
        assert len(creator.created) == 3

    run(main)


# ------------------------------------------------------------------- end to end over TLS


class Loopback:
    """A TLS server on 127.0.0.1 whose certificate names only ``a.test``, and a client context trusting its CA.

    Each response is the number of the server-side connection it came on, so reuse is visible.
    """

    def __init__(self, trustme: Any) -> None:
        authority = trustme.CA()
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert("a.test").configure_cert(self.server_context)
        self.client_context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
        authority.configure_trust(self.client_context)
        self.connections: Dict[Any, int] = {}
        self.runner: Any = None
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web

        async def number(request: web.Request) -> web.Response:
            assert request.transport is not None
            peer = request.transport.get_extra_info("peername")
            return web.Response(text=str(self.connections.setdefault(peer, len(self.connections) + 1)))

        app = web.Application()
        app.router.add_get("/", number)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.server_context)
        await site.start()
        self.url = f"https://127.0.0.1:{self.runner.addresses[0][1]}/"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def start_connect_proxy() -> Tuple[asyncio.AbstractServer, str, List[str]]:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that tunnels to 127.0.0.1 only; records each tunnel's target."""
    tunnels: List[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            host, port = target.rsplit(":", 1)
            if method != "CONNECT" or host != "127.0.0.1":
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                writer.close()
                return
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", int(port))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            return
        tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except asyncio.CancelledError:  # the loop is ending; Python 3.11's stream callback logs a cancelled handler
            writer.close()
            upstream_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", tunnels


async def fetch(session: aiohttp.ClientSession, url: str, proxy: Optional[str], name: Optional[str]) -> int:
    """The server-side connection number of one GET (raises ClientConnectorCertificateError when refused)."""
    kwargs: Dict[str, Any] = {} if name is None else {"server_hostname": name}
    async with session.get(url, proxy=proxy, **kwargs) as response:
        assert response.status == 200
        return int(await response.text())


@pytest.mark.fix("sni-key")
@pytest.mark.parametrize("via", ["direct", "connect-proxy"])
def test_each_server_hostname_is_verified_over_tls(via: str) -> None:
    trustme = pytest.importorskip("trustme")

    async def main() -> None:
        server = Loopback(trustme)
        await server.start()
        proxy_server, proxy, tunnels = (None, None, []) if via == "direct" else await start_connect_proxy()
        connector = aiohttp.TCPConnector(ssl=server.client_context, limit=1, limit_per_host=1)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                first = await fetch(session, server.url, proxy, "a.test")
                with pytest.raises(ClientConnectorCertificateError):
                    # Unpatched, this reuses a.test's pooled connection and succeeds: b.test is never checked.
                    await fetch(session, server.url, proxy, "b.test")
                assert await fetch(session, server.url, proxy, "a.test") == first, "a.test's connection stays pooled"
                with pytest.raises(ClientConnectorCertificateError):
                    await fetch(session, server.url, proxy, None)  # verifies 127.0.0.1: not in the certificate
        finally:
            await server.stop()
            if proxy_server is not None:
                proxy_server.close()
        assert len(server.connections) == 1
        if via == "connect-proxy":
            assert len(tunnels) == 3, tunnels  # a.test, b.test (refused in TLS), no override (refused in TLS)

    run(main)
