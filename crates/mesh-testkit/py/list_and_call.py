#!/usr/bin/env python3
"""list_and_call.py — the official Python SDK client with an API key: list an endpoint's tools
and call one. Prints one JSON object: {"tools": [names], "result": CallToolResult}.

    python list_and_call.py --url http://127.0.0.1:PORT/mcp/gateway/x --key KEY \
        --tool everything_echo --args '{"message": "hi"}'
"""

from __future__ import annotations

import argparse
import json

import anyio
from sdk_session import dump, session as sdk_session


async def run(args: argparse.Namespace) -> dict:
    with anyio.fail_after(60):
        async with sdk_session(args.url, args.key) as session:
            tools = await session.list_tools()
            result = await session.call_tool(args.tool, json.loads(args.args))
            return {"tools": [t.name for t in tools.tools], "result": dump(result)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--args", default="{}")
    print(json.dumps(anyio.run(run, parser.parse_args())))


if __name__ == "__main__":
    main()
