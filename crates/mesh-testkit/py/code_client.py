#!/usr/bin/env python3
"""code_client.py — the official Python SDK client through a virtual MCP with the `code`
strategy: lists its tools (one, `run_code`) and runs each script given, in one session. Prints
one JSON object with the list and each run's result, for the Rust test to judge.

    python code_client.py --url http://127.0.0.1:PORT/mcp/gateway/x --key KEY \
        --script 'return tools.everything_echo({message: "hi"})' [--script '...']...
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


def dump(result) -> dict:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(args: argparse.Namespace) -> dict:
    headers = {"Authorization": f"Bearer {args.key}"}
    with anyio.fail_after(120):
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(args.url, http_client=http) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    listed = await session.list_tools()
                    runs = []
                    for script in args.script:
                        runs.append(dump(await session.call_tool("run_code", {"code": script})))
                    return {"tools": [dump(t) for t in listed.tools], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--script", action="append", default=[])
    print(json.dumps(anyio.run(run, parser.parse_args())))


if __name__ == "__main__":
    main()
