#!/usr/bin/env python3
"""many_tools_server.py — a stdio MCP server (2025-11-25) with N generated tools, for testing
how the mesh's pages and lists cope with a big catalogue. Plain JSON-RPC on stdin/stdout, no
SDK, so that listing thousands of tools costs the server nothing worth measuring.

    python many_tools_server.py --tools 2000
    python many_tools_server.py --tools-file server.json   # {"instructions": "...", "tools": [...]}

With `--tools-file` it serves a published server's tool list as written, and its instructions
(what the server says it is for) at the handshake: one of LiveMCPBench's 70 servers, say. With
`--handshake-tool` it also lists `handshake`, whose call answers, as JSON text, the `initialize`
params this server was sent and the call's own `_meta`: what a client (the mesh) told it. With
`--ask-on-list` it asks the client `roots/list` while it answers each `tools/list`, and waits for
the answer before it lists (the answers come back in `handshake`'s text, under `asked`). With
`--forge-stateless-mark` its `initialize` result claims the stateless revision's tasks extension
under the mark only the mesh's own links may set.
"""

import argparse
import json
import sys

WORDS = ["search", "create", "update", "delete", "list", "get", "sync", "export", "import", "archive"]
THINGS = ["issue", "ticket", "file", "user", "invoice", "page", "repo", "event", "order", "report"]


def tools(n: int) -> list:
    out = []
    for i in range(n):
        verb, thing = WORDS[i % len(WORDS)], THINGS[(i // len(WORDS)) % len(THINGS)]
        out.append({
            "name": f"{verb}_{thing}_{i:04d}",
            "description": f"{verb.capitalize()} a {thing} in system {i // 100}: a generated tool for catalogue tests.",
            "inputSchema": {"type": "object", "properties": {
                "id": {"type": "string", "description": f"The {thing}'s id."},
                "limit": {"type": "integer", "minimum": 1}}, "required": ["id"]},
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools", type=int, default=2000)
    parser.add_argument("--tools-file")
    parser.add_argument("--handshake-tool", action="store_true")
    parser.add_argument("--ask-on-list", action="store_true")
    parser.add_argument("--forge-stateless-mark", action="store_true")
    args = parser.parse_args()
    instructions = None
    if args.tools_file:
        with open(args.tools_file, encoding="utf-8") as f:
            served = json.load(f)
        listed, instructions = served["tools"], served.get("instructions")
    else:
        listed = tools(args.tools)
    if args.handshake_tool:
        listed = listed + [{"name": "handshake", "description": "The initialize params this server was sent.",
                            "inputSchema": {"type": "object"}}]
    handshake, asked = None, []
    lines = iter(sys.stdin)
    for line in lines:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" not in msg or "method" not in msg:
            continue
        method, rid = msg.get("method"), msg["id"]
        if method == "initialize":
            handshake = msg.get("params")
            result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "many-tools", "version": "1.0.0"}}
            if instructions:
                result["instructions"] = instructions
            if args.forge_stateless_mark:
                # What only the mesh's own link of the stateless revision may say, and the tasks
                # extension of that revision, from a session-based server.
                result["capabilities"]["extensions"] = {"io.modelcontextprotocol/tasks": {}}
                result["_meta"] = {"mcp-mesh/servesStateless": True}
        elif method == "tools/list":
            if args.ask_on_list:
                ask = f"ask-{len(asked)}"
                sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": ask, "method": "roots/list"}) + "\n")
                sys.stdout.flush()
                for answer in lines:
                    try:
                        answer = json.loads(answer)
                    except ValueError:
                        continue
                    if answer.get("id") == ask and "method" not in answer:
                        asked.append(answer.get("error") or answer.get("result"))
                        break
            result = {"tools": listed}
        elif method == "tools/call":
            name = msg.get("params", {}).get("name", "")
            if name == "handshake" and args.handshake_tool:
                text = json.dumps({"initialize": handshake, "meta": msg.get("params", {}).get("_meta"), "asked": asked})
            else:
                text = f"called {name}"
            result = {"content": [{"type": "text", "text": text}]}
        elif method == "ping":
            result = {}
        else:
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            continue
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
