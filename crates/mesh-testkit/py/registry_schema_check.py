"""Validates MCP Registry listing pages (`GET /v0.1/servers` answers, one JSON file each, given
as arguments) against the official server.json schema (the file in $MESH_TEST_SERVER_SCHEMA):
each page's shape, each entry's `server` and its official `_meta`. Prints one line per check
and, last, `N passed, M failed`; exits 1 on any failure."""

import json
import os
import sys

from jsonschema import Draft7Validator

schema = json.load(open(os.environ["MESH_TEST_SERVER_SCHEMA"]))
Draft7Validator.check_schema(schema)
server_validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
# The listing's own shape, as the registry's OpenAPI document describes ServerList and
# ServerResponse (written here; the registry publishes no JSON Schema for it).
page_validator = Draft7Validator({
    "type": "object",
    "required": ["servers"],
    "properties": {
        "servers": {"type": "array", "items": {
            "type": "object",
            "required": ["server", "_meta"],
            "properties": {"_meta": {
                "type": "object",
                "required": ["io.modelcontextprotocol.registry/official"],
                "properties": {"io.modelcontextprotocol.registry/official": {
                    "type": "object",
                    "required": ["status", "publishedAt", "updatedAt", "isLatest"],
                    "additionalProperties": False,
                    "properties": {
                        "status": {"enum": ["active", "deprecated", "deleted"]},
                        "publishedAt": {"type": "string"},
                        "updatedAt": {"type": "string"},
                        "isLatest": {"type": "boolean"},
                    },
                }},
            }},
        }},
        "metadata": {"type": "object", "properties": {
            "nextCursor": {"type": ["string", "null"]},
            "count": {"type": "integer"},
        }},
    },
})

passed = failed = 0


def check(what, errors):
    global passed, failed
    errors = list(errors)
    if errors:
        failed += 1
        print(f"FAIL {what}: " + "; ".join(e.message for e in errors[:3]))
    else:
        passed += 1
        print(f"ok   {what}")


for path in sys.argv[1:]:
    page = json.load(open(path))
    check(f"page {os.path.basename(path)}", page_validator.iter_errors(page))
    for entry in page.get("servers", []):
        server = entry.get("server", {})
        check(f"server {server.get('name')}", server_validator.iter_errors(server))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
