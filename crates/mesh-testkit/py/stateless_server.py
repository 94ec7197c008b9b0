#!/usr/bin/env python3
"""stateless_server.py — a small MCP server of the stateless revision (2026-07-28), built with the
official Python SDK (`mcp` 2.3.0), for the mesh's end-to-end tests.

The SDK serves Streamable HTTP from one endpoint for both revisions: a POST whose
`MCP-Protocol-Version` header names 2026-07-28 is one self-contained exchange (no handshake, no
session); anything else goes to the session-based transport (`initialize`, `Mcp-Session-Id`). The
SDK has no switch to turn the second off, so `--stateless-only` puts a thin ASGI gate in front of
the SDK's app that refuses what the SDK would route to its session-based transport — the way a
server that only speaks 2026-07-28 answers. That is the form that makes the mesh bridge: a
session-based client's `initialize` fails at such a server, and the mesh speaks 2026-07-28 to it on
the client's behalf. Without the flag the SDK's own dual server is served unchanged.

Tools:
- `add(a, b)`: plain; no client input.
- `ask_name()`: elicits a form with one string, `name`, and answers "Hello, <name>".
- `ask_model(prompt)`: asks the client to sample `prompt` and answers "The model said: <text>".
- `ask_name_then_model()`: elicits the name, then samples a greeting for it — two rounds of input
  requests, the second depending on the first's answer.
- `count(steps)`: reports progress once per step, then answers "counted to <steps>".

The questions are asked through the SDK's resolvers (`Resolve(...)` returning `Elicit`/`Sample`),
which follow the revision of the request: in 2026-07-28 they become an input-required result
(`resultType: "input_required"`, `inputRequests`, a sealed `requestState`) and the tool body runs
once the client retries with `inputResponses`; in 2025-11-25 they are server-to-client requests
sent mid-call. So the same tools serve both revisions of the dual server.

    python stateless_server.py [--port N] [--stateless-only]

Prints `READY http://127.0.0.1:PORT/mcp` on stdout once it accepts connections (port 0, the
default, lets the OS pick). Exits when its stdin reaches end of file, so a test that dies without
killing it does not leave it behind.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from typing import Annotated, Any

import anyio
import uvicorn
from mcp_types import CreateMessageResult, SamplingMessage, TextContent
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve, Sample

mcp = MCPServer("mesh-stateless-py", version="1.0.0")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Name(BaseModel):
    name: str = Field(description="Your name")


def who_is_asking() -> Elicit[Name]:
    # A resolver that returns a request marker: the SDK asks the client and injects the answer.
    return Elicit("What is your name?", Name)


@mcp.tool()
def ask_name(who: Annotated[Name, Resolve(who_is_asking)]) -> str:
    """Ask the user for their name (elicitation) and greet them."""
    return f"Hello, {who.name}"


def text_of(reply: CreateMessageResult) -> str:
    blocks = reply.content if isinstance(reply.content, list) else [reply.content]
    return "".join(b.text for b in blocks if isinstance(b, TextContent))


def sample(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=64)


def model_reply(prompt: str) -> Sample:
    # Takes the tool's own `prompt` argument by name.
    return sample(prompt)


@mcp.tool()
def ask_model(prompt: str, reply: Annotated[CreateMessageResult, Resolve(model_reply)]) -> str:
    """Ask the client's model (sampling) and return what it said."""
    return f"The model said: {text_of(reply)}"


def greeting_for(who: Annotated[Name, Resolve(who_is_asking)]) -> Sample:
    # Depends on the elicited name, so the sampling question can only be asked in a second round.
    return sample(f"Write a one-line greeting for {who.name}.")


@mcp.tool()
def ask_name_then_model(
    who: Annotated[Name, Resolve(who_is_asking)],
    greeting: Annotated[CreateMessageResult, Resolve(greeting_for)],
) -> str:
    """Ask for the user's name, then ask the client's model for a greeting for them."""
    return f"{who.name}: {text_of(greeting)}"


@mcp.tool()
async def count(steps: int, ctx: Context) -> str:
    """Count to `steps`, reporting progress at each step."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
    return f"counted to {steps}"


class StatelessOnly:
    """Refuses every request the SDK would hand to its session-based transport.

    The SDK routes by the `MCP-Protocol-Version` header: absent or a handshake revision goes to the
    session-based transport. Those requests are answered here instead, as a server of 2026-07-28
    alone answers them: a POST with `-32022` (unsupported protocol version) naming the revisions it
    does speak, anything else 405. Everything else reaches the SDK untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        version = request.headers.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self.app(scope, receive, send)
            return
        if request.method != "POST":
            await Response(status_code=405, headers={"allow": "POST"})(scope, receive, send)
            return
        request_id: Any = None
        requested = version
        try:
            body = json.loads(await request.body())
            if isinstance(body, dict):
                request_id = body.get("id")
                params = body.get("params")
                if requested is None and isinstance(params, dict):
                    requested = params.get("protocolVersion")
        except ValueError:
            pass
        error = {
            "code": -32022,
            "message": "Unsupported protocol version",
            "data": {"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": requested},
        }
        reply = JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=400)
        await reply(scope, receive, send)


def exit_at_stdin_eof() -> None:
    # A daemon thread: blocks on stdin and ends the process when the parent closes it or dies.
    sys.stdin.buffer.read()
    os._exit(0)


async def serve(sock: socket.socket, app: ASGIApp) -> None:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(30):
            while not server.started:
                await anyio.sleep(0.02)
        port = sock.getsockname()[1]
        print(f"READY http://127.0.0.1:{port}/mcp", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stateless-only", action="store_true")
    args = p.parse_args()
    app: ASGIApp = mcp.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    if args.stateless_only:
        app = StatelessOnly(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    threading.Thread(target=exit_at_stdin_eof, daemon=True).start()
    anyio.run(serve, sock, app)


if __name__ == "__main__":
    main()
