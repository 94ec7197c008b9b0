#!/usr/bin/env python3
"""stateless_server_client.py — drive `stateless_server.py` (through the mesh) with the official
Python SDK's client and report per check.

`--mode auto` (the default): the client probes with `server/discover` and speaks the stateless
revision (2026-07-28); the server's questions come back as input-required results, which the SDK
answers through the callbacks below and retries. `--mode legacy`: the client does the
`initialize` handshake (2025-11-25) and the questions arrive as server-to-client requests on the
session — through the mesh to a stateless-only server, that is the mesh's bridge at work.

The callbacks record what they were asked, so the checks prove both directions: the question
reached the client as the server put it, and the client's answer reached the tool.

Output: one JSON line per check, {"check": name, "ok": bool, "detail": "..."}, then
"N passed, M failed". Exit 0 only when every check passed. Every check has its own deadline.

    python stateless_server_client.py --url http://127.0.0.1:PORT/mcp/py --key KEY [--mode legacy]
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

RUN_ID = uuid.uuid4().hex[:8]
NAME = f"Ada {RUN_ID}"
MODEL_TEXT = f"sampled-{RUN_ID}"
EXPECTED_TOOLS = {"add", "ask_name", "ask_model", "ask_name_then_model", "count"}

# What the server asked, in order: ("elicitation", message, schema) / ("sampling", prompt text).
asked: list[tuple[Any, ...]] = []


async def elicitation_callback(context: Any, params: Any) -> Any:
    asked.append(("elicitation", params.message, params.requested_schema))
    return types.ElicitResult(action="accept", content={"name": NAME})


async def sampling_callback(context: Any, params: Any) -> Any:
    prompt = " ".join(
        block.text
        for message in params.messages
        for block in (message.content if isinstance(message.content, list) else [message.content])
        if isinstance(block, types.TextContent)
    )
    asked.append(("sampling", prompt))
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"{MODEL_TEXT} re: {prompt}"),
        model="mesh-check-model",
        stop_reason="endTurn",
    )


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(cond: bool, detail: str) -> None:
    if not cond:
        raise CheckFailed(detail)


def text_of(result: Any) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


def asked_since(mark: int) -> list[tuple[Any, ...]]:
    return asked[mark:]


def expect_name_question(q: tuple[Any, ...]) -> None:
    expect(q[0] == "elicitation", f"expected an elicitation, got {q}")
    expect(q[1] == "What is your name?", f"message: {q[1]!r}")
    schema = q[2] or {}
    expect(schema.get("properties", {}).get("name", {}).get("type") == "string", f"schema: {schema}")
    expect(schema.get("required") == ["name"], f"schema: {schema}")


def make_checks(mode: str) -> list[tuple[str, Callable[[Client], Awaitable[str]]]]:
    async def check_version(c: Client) -> str:
        want = "2026-07-28" if mode == "auto" else "2025-11-25"
        expect(c.protocol_version == want, f"negotiated {c.protocol_version}, expected {want}")
        return f"protocol {c.protocol_version}, server {c.server_info}"

    async def check_tools(c: Client) -> str:
        names = {t.name for t in (await c.list_tools()).tools}
        expect(names == EXPECTED_TOOLS, f"tools: {sorted(names)}")
        return ", ".join(sorted(names))

    async def check_add(c: Client) -> str:
        r = await c.call_tool("add", {"a": 20, "b": 22})
        expect(not r.is_error, f"isError: {text_of(r)}")
        expect(text_of(r) == "42", f"text: {text_of(r)!r}")
        expect(r.structured_content == {"result": 42}, f"structured: {r.structured_content}")
        return "20 + 22 = 42"

    async def check_ask_name(c: Client) -> str:
        mark = len(asked)
        r = await c.call_tool("ask_name", {})
        questions = asked_since(mark)
        expect(len(questions) == 1, f"asked {questions}")
        expect_name_question(questions[0])
        expect(not r.is_error and text_of(r) == f"Hello, {NAME}", f"result: {text_of(r)!r}")
        return text_of(r)

    async def check_ask_model(c: Client) -> str:
        mark = len(asked)
        prompt = f"Say something about {RUN_ID}"
        r = await c.call_tool("ask_model", {"prompt": prompt})
        questions = asked_since(mark)
        expect(questions == [("sampling", prompt)], f"asked {questions}")
        want = f"The model said: {MODEL_TEXT} re: {prompt}"
        expect(not r.is_error and text_of(r) == want, f"result: {text_of(r)!r}")
        return text_of(r)

    async def check_two_rounds(c: Client) -> str:
        mark = len(asked)
        r = await c.call_tool("ask_name_then_model", {})
        questions = asked_since(mark)
        expect(len(questions) == 2, f"asked {questions}")
        expect_name_question(questions[0])
        greeting = f"Write a one-line greeting for {NAME}."
        expect(questions[1] == ("sampling", greeting), f"second question: {questions[1]}")
        want = f"{NAME}: {MODEL_TEXT} re: {greeting}"
        expect(not r.is_error and text_of(r) == want, f"result: {text_of(r)!r}")
        return "elicitation, then sampling on its answer"

    async def check_progress(c: Client) -> str:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            seen.append((value, total, message))

        r = await c.call_tool("count", {"steps": 3}, progress_callback=on_progress)
        expect(not r.is_error and text_of(r) == "counted to 3", f"result: {text_of(r)!r}")
        want = [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
        expect(seen == want, f"progress: {seen}")
        return f"{len(seen)} progress notifications"

    return [
        ("version", check_version),
        ("tools", check_tools),
        ("add", check_add),
        ("ask_name", check_ask_name),
        ("ask_model", check_ask_model),
        ("ask_name_then_model", check_two_rounds),
        ("progress", check_progress),
    ]


async def main(args: argparse.Namespace) -> int:
    passed = failed = 0
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    with anyio.fail_after(args.timeout):
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(args.url, http_client=http)
            async with Client(
                transport,
                mode=args.mode,
                sampling_callback=sampling_callback,
                elicitation_callback=elicitation_callback,
            ) as client:
                for name, check in make_checks(args.mode):
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
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto")
    p.add_argument("--timeout", type=float, default=120)
    sys.exit(anyio.run(main, p.parse_args()))
