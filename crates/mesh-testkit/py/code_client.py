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

import anyio
from sdk_session import dump, session as sdk_session


async def run(args: argparse.Namespace) -> dict:
    with anyio.fail_after(120):
        async with sdk_session(args.url, args.key, timeout=60) as session:
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
