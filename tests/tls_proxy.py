"""A TLS front for the dev server, for the TLS tests: `temporal server start-dev` has no TLS
options (checked: `temporal server start-dev --help`, CLI 1.9 / server 1.32, and TLS is static
server configuration, not dynamic config), so a real handshake needs something in front of it.

It terminates TLS the way a cluster's frontend or an ingress does — its certificate, the
client's certificate checked against a CA (mutual TLS), HTTP/2 by ALPN as gRPC needs — and
passes the bytes through to the dev server's plain port. The handshake is OpenSSL's (Python's
`ssl`); the client side is the SDK's own.

    python -m tests.tls_proxy --port 7300 --target 127.0.0.1:7233 \\
        --cert server.pem --key server.key --client-ca ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            writer.close()


def server_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


async def serve(port: int, target: str, context: ssl.SSLContext) -> None:
    host, target_port = target.rsplit(":", 1)

    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port of the plain server")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = parser.parse_args()
    context = server_context(args.cert, args.key, args.client_ca)
    asyncio.run(serve(args.port, args.target, context))


if __name__ == "__main__":
    main()
