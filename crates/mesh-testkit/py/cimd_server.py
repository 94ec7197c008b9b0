#!/usr/bin/env python3
"""cimd_server.py — serve one OAuth Client ID Metadata Document over HTTPS on loopback.

A CIMD client's client_id is the https URL of a JSON document describing it; the authorization
server fetches that URL. The end-to-end tests point the mesh at this server (its test CA signs
`--cert`) to prove the mesh fetches and checks the document. Standard library only.

    python cimd_server.py --cert leaf.pem --key leaf.key --redirect-uri http://127.0.0.1:5555/callback \
        [--redirect-uri URI ...] [--client-id-override URL] [--name NAME]

GET /client.json answers
    {"client_id": "https://127.0.0.1:<port>/client.json" (or --client-id-override, for the
     "client_id does not match the URL" negative case), "client_name": NAME,
     "redirect_uris": [...], "grant_types": ["authorization_code", "refresh_token"],
     "response_types": ["code"], "token_endpoint_auth_method": "none"}
with Content-Type: application/json and Cache-Control: max-age=300. Anything else is 404.

Protocol with the parent process:
  * the first stdout line is `listening <port>` (flushed), nothing else goes to stdout;
  * every request is logged to stderr as `cimd: <client> "<request line>" <status>`, so a test can
    count fetches (e.g. to see the mesh's cache at work);
  * the server exits when its stdin reaches EOF: a test that dies (and so closes the pipe) never
    leaves it running.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def build_document(args: argparse.Namespace, port: int) -> bytes:
    client_id = args.client_id_override or f"https://127.0.0.1:{port}/client.json"
    doc = {
        "client_id": client_id,
        "client_name": args.name,
        "redirect_uris": args.redirect_uri,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    return json.dumps(doc).encode()


def make_handler(body_for_port: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # A client that connects and never finishes its TLS handshake or request must not pin a
        # thread forever (the handshake runs lazily in this thread, see main()).
        timeout = 10
        protocol_version = "HTTP/1.1"
        server_version = "mesh-test-cimd/1"

        def do_GET(self) -> None:  # noqa: N802 — the http.server naming convention
            path = self.path.split("?", 1)[0]
            if path == "/client.json":
                self._send(200, body_for_port["doc"], {"Content-Type": "application/json", "Cache-Control": "max-age=300"})
            else:
                self._send(404, b'{"error":"not found"}\n', {"Content-Type": "application/json"})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 — signature is fixed
            # Default log lines go to stderr already; keep them short and clearly labelled.
            sys.stderr.write(f"cimd: {self.client_address[0]} {format % args}\n")
            sys.stderr.flush()

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck request thread must not keep the process alive at exit

    def handle_error(self, request: object, client_address: object) -> None:
        # TLS failures (a client that does not trust our CA, a plain-HTTP probe) are expected in
        # negative tests: one line instead of a traceback.
        exc = sys.exc_info()[1]
        sys.stderr.write(f"cimd: {client_address} error: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cert", required=True, help="PEM certificate chain for 127.0.0.1 (leaf first)")
    parser.add_argument("--key", required=True, help="PEM private key of --cert")
    parser.add_argument("--redirect-uri", required=True, action="append", help="redirect URI listed in the document (repeatable)")
    parser.add_argument("--client-id-override", help="client_id to put in the document instead of this server's own URL")
    parser.add_argument("--name", default="Mesh CIMD Test Client", help="client_name (default %(default)s)")
    args = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        print(f"cimd_server: cannot load --cert/--key: {exc}", file=sys.stderr)
        return 2

    body: dict[str, bytes] = {}
    server = Server(("127.0.0.1", 0), make_handler(body))
    port = server.server_address[1]
    body["doc"] = build_document(args, port)
    # do_handshake_on_connect=False: accept() in the serving thread then never blocks on a slow
    # or broken client; the handshake happens on first read, inside that request's own thread.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)

    thread = threading.Thread(target=server.serve_forever, name="cimd-serve", daemon=True)
    thread.start()
    print(f"listening {port}", flush=True)
    sys.stderr.write(f"cimd: serving {body['doc'].decode()}\n")
    sys.stderr.flush()

    # Block until the parent closes our stdin (or dies), then stop.
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
