#!/usr/bin/env python3
"""list_and_call.py — the official Python SDK client with an API key: list an endpoint's tools
and call one. Prints one JSON object: {"tools": [names], "result": CallToolResult}.

    python list_and_call.py --url http://127.0.0.1:PORT/mcp/gateway/x --key KEY \
        --tool everything_echo --args '{"message": "hi"}'
"""

from __future__ import annotations

import argparse
import json
import warnings

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

warnings.filterwarnings("ignore", category=DeprecationWarning)


async def run(args: argparse.Namespace) -> dict:
    headers = {"Authorization": f"Bearer {args.key}"}
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(args.url, http_client=http) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    result = await session.call_tool(args.tool, json.loads(args.args))
                    return {
                        "tools": [t.name for t in tools.tools],
                        "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
                    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--args", default="{}")
    print(json.dumps(anyio.run(run, parser.parse_args())))


if __name__ == "__main__":
    main()
