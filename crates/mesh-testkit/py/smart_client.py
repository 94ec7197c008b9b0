#!/usr/bin/env python3
"""smart_client.py — the official Python SDK client through a virtual MCP with the `smart`
strategy: list (three meta-tools), search, describe, call, in one session. Prints one JSON
object with what each step returned, for the Rust test to judge.

    python smart_client.py --url http://127.0.0.1:PORT/mcp/gateway/x --key KEY \
        --query "echo a message back" --tool everything_echo --args '{"message": "hi"}' \
        [--query "..."]...
"""

from __future__ import annotations

import argparse
import json

import anyio
from sdk_session import dump, session as sdk_session


async def run(args: argparse.Namespace) -> dict:
    with anyio.fail_after(60):
        async with sdk_session(args.url, args.key) as session:
            listed = await session.list_tools()
            searches = {}
            for query in args.query:
                found = await session.call_tool("search_tools", {"query": query, "k": 5})
                searches[query] = dump(found)
            described = await session.call_tool("describe_tools", {"names": [args.tool]})
            called = await session.call_tool(
                "call_tool", {"name": args.tool, "arguments": json.loads(args.args)}
            )
            denied = None
            if args.denied:
                # Refused as unknown, as a direct call of it would be: a JSON-RPC error.
                try:
                    denied = dump(await session.call_tool("call_tool", {"name": args.denied, "arguments": {}}))
                except Exception as e:  # noqa: BLE001 - the refusal is the result
                    denied = {"error": str(e)}
            return {
                "tools": [t.name for t in listed.tools],
                "searches": searches,
                "described": dump(described),
                "called": dump(called),
                "denied": denied,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--query", action="append", default=[])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--args", default="{}")
    parser.add_argument("--denied", help="a tool the key may not call, called through call_tool")
    print(json.dumps(anyio.run(run, parser.parse_args())))


if __name__ == "__main__":
    main()
