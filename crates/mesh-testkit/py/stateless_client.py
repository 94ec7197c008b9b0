#!/usr/bin/env python3
"""stateless_client.py — drive a server through the mesh with the official Python SDK's
stateless (2026-07-28) client and report per check.

The SDK's `Client(mode="auto")` probes with `server/discover` and speaks the stateless revision
when the server answers it; every request then carries its own `_meta` envelope, and a server's
questions (sampling, elicitation, roots) come back as input-required results that the SDK answers
through the callbacks below and retries. The suite names npm `server-everything`'s tools, a server
of the session-based revision: through the mesh, the two revisions meet.

Output: one JSON line per check, {"check": name, "ok": bool, "detail": "..."}, then
"N passed, M failed". Exit 0 only when every check passed. Every check has its own deadline.

    python stateless_client.py --url http://127.0.0.1:PORT/mcp/everything --key KEY
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*deprecated.*")

RUN_ID = uuid.uuid4().hex[:8]
SAMPLING_MARKER = f"mesh-sampling-{RUN_ID}"
ELICITED_NAME = f"Mesh Stateless {RUN_ID}"
seen: dict[str, int] = {"sampling": 0, "elicitation": 0, "roots": 0}


async def sampling_callback(context: Any, params: Any) -> Any:
    seen["sampling"] += 1
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"canned reply {SAMPLING_MARKER}"),
        model="mesh-check-model",
        stop_reason="endTurn",
    )


async def elicitation_callback(context: Any, params: Any) -> Any:
    seen["elicitation"] += 1
    return types.ElicitResult(action="accept", content={"name": ELICITED_NAME, "check": True})


async def list_roots_callback(context: Any) -> Any:
    seen["roots"] += 1
    return types.ListRootsResult(roots=[types.Root(uri=f"file:///tmp/mesh-root-{RUN_ID}", name="mesh-root")])


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(cond: bool, detail: str) -> None:
    if not cond:
        raise CheckFailed(detail)


def text_of(result: Any) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def check_version(c: Client) -> str:
    expect(c.protocol_version == "2026-07-28", f"negotiated {c.protocol_version}, not the stateless revision")
    return f"protocol {c.protocol_version}, server {c.server_info}"


async def check_tools(c: Client) -> str:
    names = [t.name for t in (await c.list_tools()).tools]
    for n in ("echo", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"):
        expect(n in names, f"no {n!r} in {names}")
    return f"{len(names)} tools"


async def check_echo(c: Client) -> str:
    message = f"stateless hello {RUN_ID} ✓"
    r = await c.call_tool("echo", {"message": message})
    expect(not r.is_error and message in text_of(r), f"echo: {text_of(r)[:200]}")
    return "echo round-trips"


async def check_sampling(c: Client) -> str:
    before = seen["sampling"]
    r = await c.call_tool("trigger-sampling-request", {"prompt": "Say hello", "maxTokens": 32})
    expect(seen["sampling"] > before, "sampling_callback was never called")
    expect(SAMPLING_MARKER in text_of(r), f"marker missing: {text_of(r)[:200]}")
    return "sampling answered by retry; marker came back"


async def check_elicitation(c: Client) -> str:
    before = seen["elicitation"]
    r = await c.call_tool("trigger-elicitation-request", {})
    expect(seen["elicitation"] > before, "elicitation_callback was never called")
    expect(ELICITED_NAME in text_of(r), f"content not reflected: {text_of(r)[:200]}")
    return "elicitation answered by retry"


async def check_roots(c: Client) -> str:
    before = seen["roots"]
    r = await c.call_tool("get-roots-list", {})
    expect(seen["roots"] > before, "list_roots_callback was never called")
    expect(RUN_ID in text_of(r), f"roots not reflected: {text_of(r)[:200]}")
    return "roots answered by retry"


async def check_resources(c: Client) -> str:
    listed = await c.list_resources()
    expect(len(listed.resources) > 0, "no resources")
    uri = str(listed.resources[0].uri)
    read = await c.read_resource(uri)
    expect(len(read.contents) > 0, f"{uri} has no contents")
    return f"{len(listed.resources)} resources; read {uri}"


async def check_prompt(c: Client) -> str:
    got = await c.get_prompt("simple-prompt")
    expect(len(got.messages) > 0, "no messages")
    return "simple-prompt"


async def check_progress(c: Client) -> str:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    r = await c.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 2}, progress_callback=on_progress)
    expect(not r.is_error, f"isError: {text_of(r)[:200]}")
    expect(len(progress) >= 1, "no progress notifications")
    return f"{len(progress)} progress notifications"


async def check_listen(c: Client) -> str:
    async with c.listen(tools_list_changed=True) as sub:
        honored = getattr(sub, "honored", None)
    return f"acknowledged: {honored}"


CHECKS: list[tuple[str, Callable[[Client], Awaitable[str]]]] = [
    ("version", check_version),
    ("tools", check_tools),
    ("echo", check_echo),
    ("sampling", check_sampling),
    ("elicitation", check_elicitation),
    ("roots", check_roots),
    ("resources", check_resources),
    ("prompt", check_prompt),
    ("progress", check_progress),
    ("listen", check_listen),
]


async def main(args: argparse.Namespace) -> int:
    passed = failed = 0
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    with anyio.fail_after(args.timeout):
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(args.url, http_client=http)
            async with Client(
                transport,
                mode="auto",
                sampling_callback=sampling_callback,
                elicitation_callback=elicitation_callback,
                list_roots_callback=list_roots_callback,
            ) as client:
                for name, check in CHECKS:
                    try:
                        with anyio.fail_after(30):
                            detail = await check(client)
                        ok = True
                    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
                        ok, detail = False, f"{type(e).__name__}: {e}"
                    passed, failed = passed + ok, failed + (not ok)
                    print(json.dumps({"check": name, "ok": ok, "detail": detail}), flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--timeout", type=float, default=240)
    sys.exit(anyio.run(main, p.parse_args()))
