#!/usr/bin/env python3
"""mcp_client_check.py — drive a real MCP server with the official Python SDK and report per check.

This is the "real MCP client" of the end-to-end tests: it runs the PyPI `mcp` 2.x SDK as a full
client (sampling, elicitation, roots and logging callbacks all declared) against a server behind
--url (normally the mesh), or against a stdio command with --stdio (a control run without the
mesh). Each suite names the public servers' own tools, so a check that fails through the mesh but
passes directly points at the mesh.

Output: one JSON line per check, {"check": name, "ok": bool, "detail": "..."}, then a line
"N passed, M failed". Exit 0 only when every check passed. Nothing here can hang: every check has
its own deadline, the whole run has one, and a SIGALRM backstop exits even if teardown stalls.

    python mcp_client_check.py --url http://127.0.0.1:PORT/mcp --key KEY --suite everything
    python mcp_client_check.py --url URL --key KEY --suite filesystem --root /tmp/dir
    python mcp_client_check.py --stdio "mcp-server-time" --suite time
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

# logging/setLevel and friends are deprecated in the 2026-07-28 revision, but the 2025-11-25
# wire this client speaks still has them; the warnings would only clutter the test log.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*deprecated.*")

# Strings the server can only return if the round trip through our callbacks really happened.
RUN_ID = uuid.uuid4().hex[:8]
SAMPLING_MARKER = f"mesh-sampling-{RUN_ID}"
ELICITED_NAME = f"Mesh Check {RUN_ID}"


# ---- what the callbacks saw ------------------------------------------------------------------
@dataclass
class Seen:
    """Server→client traffic observed by the callbacks, for the checks to assert on."""

    sampling: list[types.CreateMessageRequestParams] = field(default_factory=list)
    elicitation: list[types.ElicitRequestParams] = field(default_factory=list)
    roots_requests: int = 0
    log_messages: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    # The SDK turns an HTTP 4xx/5xx into a bare JSON-RPC error; keep the status for the detail.
    http_errors: list[str] = field(default_factory=list)


@dataclass
class Ctx:
    session: ClientSession
    args: argparse.Namespace
    seen: Seen
    init: types.InitializeResult | None = None

    def tool(self, name: str) -> str:
        """A server-side tool/prompt name as the client sees it (the mesh may prefix it)."""
        return self.args.prefix + name


def make_callbacks(seen: Seen, root: str | None) -> dict[str, Any]:
    async def sampling_callback(context: Any, params: types.CreateMessageRequestParams) -> Any:
        seen.sampling.append(params)
        # A canned "LLM" answer: the marker must come back inside the tool result.
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"canned reply {SAMPLING_MARKER}"),
            model="mesh-check-model",
            stop_reason="endTurn",
        )

    async def elicitation_callback(context: Any, params: types.ElicitRequestParams) -> Any:
        seen.elicitation.append(params)
        # Accept with the one required field of server-everything's form, plus a boolean.
        return types.ElicitResult(action="accept", content={"name": ELICITED_NAME, "check": True})

    async def list_roots_callback(context: Any) -> Any:
        seen.roots_requests += 1
        roots = [] if root is None else [types.Root(uri=Path(root).resolve().as_uri(), name="mesh-check-root")]
        return types.ListRootsResult(roots=roots)

    async def logging_callback(params: types.LoggingMessageNotificationParams) -> None:
        seen.log_messages.append(params)

    return {
        "sampling_callback": sampling_callback,
        "elicitation_callback": elicitation_callback,
        "list_roots_callback": list_roots_callback,
        "logging_callback": logging_callback,
    }


# ---- helpers ---------------------------------------------------------------------------------
class CheckFailed(Exception):
    """A check's expectation did not hold; the message is the detail line."""


def expect(cond: bool, detail: str) -> None:
    if not cond:
        raise CheckFailed(detail)


def texts(result: types.CallToolResult | types.GetPromptResult) -> str:
    """All text content of a tool result (or prompt messages), joined."""
    blocks = result.content if isinstance(result, types.CallToolResult) else [m.content for m in result.messages]
    return "\n".join(b.text for b in blocks if isinstance(b, types.TextContent))


def short(s: str, n: int = 160) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


async def call_ok(ctx: Ctx, name: str, arguments: dict[str, Any], **kw: Any) -> tuple[types.CallToolResult, str]:
    """Call a tool and fail the check on an isError result."""
    result = await ctx.session.call_tool(ctx.tool(name), arguments, **kw)
    text = texts(result)
    expect(not result.is_error, f"{name} returned isError: {short(text)}")
    return result, text


def describe(exc: BaseException, http_errors: list[str] = ()) -> str:
    """One line for an exception, unwrapping the task-group exception groups anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, CheckFailed):
        line = str(exc)
    elif isinstance(exc, MCPError):
        line = f"MCPError {exc.code}: {exc.message}"
    else:
        line = f"{type(exc).__name__}: {str(exc) or repr(exc)}"
    if http_errors:
        line += f" ({'; '.join(http_errors[-2:])})"
    return short(line, 300)


# ---- checks shared by every suite ------------------------------------------------------------
async def check_initialize(ctx: Ctx) -> str:
    ctx.init = await ctx.session.initialize()
    info = ctx.init.server_info
    expect(info is not None and bool(info.name), "InitializeResult has no serverInfo.name")
    return f"{info.name} {info.version}, protocol {ctx.init.protocol_version}"


async def list_tool_names(ctx: Ctx) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(50):  # pagination, bounded
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await ctx.session.list_tools(params=params)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            break
    return names


async def check_ping(ctx: Ctx) -> str:
    await ctx.session.send_ping()
    return "pong"


# ---- suite: everything (npm @modelcontextprotocol/server-everything) -------------------------
async def ev_tools_list(ctx: Ctx) -> str:
    names = await list_tool_names(ctx)
    expect(ctx.tool("echo") in names, f"no {ctx.tool('echo')!r} in {names}")
    # The trigger-* tools exist only when the server saw our sampling/elicitation/roots
    # capabilities, so their presence shows the capabilities reached the upstream.
    conditional = [n for n in ("trigger-sampling-request", "trigger-elicitation-request", "get-roots-list")
                   if ctx.tool(n) in names]
    return f"{len(names)} tools; capability-gated present: {conditional}"


async def ev_echo(ctx: Ctx) -> str:
    message = f"hello through the mesh {RUN_ID} ✓"
    _, text = await call_ok(ctx, "echo", {"message": message})
    expect(message in text, f"echo text did not round-trip: {short(text)}")
    return short(text)


async def ev_progress(ctx: Ctx) -> str:
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    _, text = await call_ok(ctx, "trigger-long-running-operation", {"duration": 2, "steps": 4},
                            progress_callback=on_progress)
    expect(len(progress) >= 1, f"no notifications/progress received; result: {short(text)}")
    return f"{len(progress)} progress notifications {progress}"


async def ev_sampling(ctx: Ctx) -> str:
    before = len(ctx.seen.sampling)
    _, text = await call_ok(ctx, "trigger-sampling-request", {"prompt": "Say hello", "maxTokens": 32})
    expect(len(ctx.seen.sampling) > before, "sampling_callback was never called")
    expect(SAMPLING_MARKER in text, f"sampling marker missing from tool result: {short(text)}")
    return "sampling/createMessage answered; marker came back in the tool result"


async def ev_elicitation(ctx: Ctx) -> str:
    before = len(ctx.seen.elicitation)
    _, text = await call_ok(ctx, "trigger-elicitation-request", {})
    expect(len(ctx.seen.elicitation) > before, "elicitation_callback was never called")
    expect(ELICITED_NAME in text, f"accepted content not reflected in the result: {short(text)}")
    return "elicitation/create accepted; content reflected in the tool result"


async def ev_resources(ctx: Ctx) -> str:
    listed = await ctx.session.list_resources()
    expect(len(listed.resources) > 0, "resources/list returned no resources")
    uri = str(listed.resources[0].uri)
    read = await ctx.session.read_resource(uri)
    expect(len(read.contents) > 0, f"resources/read {uri} returned no contents")
    first = read.contents[0]
    size = len(getattr(first, "text", None) or getattr(first, "blob", None) or "")
    expect(size > 0, f"resources/read {uri} returned empty content")
    return f"{len(listed.resources)} resources; read {uri} ({size} chars)"


async def ev_prompts(ctx: Ctx) -> str:
    listed = await ctx.session.list_prompts()
    names = [p.name for p in listed.prompts]
    name = ctx.tool("simple-prompt")
    expect(name in names, f"no {name!r} in {names}")
    got = await ctx.session.get_prompt(name)
    expect(len(got.messages) > 0, f"prompts/get {name} returned no messages")
    return f"{len(names)} prompts; {name}: {short(texts(got), 80)}"


async def ev_completion(ctx: Ctx) -> str:
    ref = types.PromptReference(type="ref/prompt", name=ctx.tool("completable-prompt"))
    result = await ctx.session.complete(ref, {"name": "department", "value": "Eng"})
    values = result.completion.values
    expect("Engineering" in values, f"completion values {values} lack 'Engineering'")
    return f"completable-prompt department 'Eng' -> {values}"


async def ev_set_level(ctx: Ctx) -> str:
    await ctx.session.set_logging_level("debug")
    return "logging/setLevel debug accepted"


# ---- suite: filesystem (npm @modelcontextprotocol/server-filesystem, started with no dirs) ---
async def fs_roots_requested(ctx: Ctx) -> str:
    # The server asks roots/list right after notifications/initialized.
    with anyio.move_on_after(ctx.args.check_timeout - 1):
        while ctx.seen.roots_requests == 0:
            await anyio.sleep(0.05)
    expect(ctx.seen.roots_requests > 0, "the server never sent roots/list")
    return f"roots/list answered {ctx.seen.roots_requests}x with {ctx.args.root}"


async def fs_allowed_directories(ctx: Ctx) -> str:
    want = os.path.realpath(ctx.args.root)
    text = ""
    # The server applies the roots asynchronously after our answer: poll briefly.
    with anyio.move_on_after(ctx.args.check_timeout - 1):
        while True:
            _, text = await call_ok(ctx, "list_allowed_directories", {})
            if want in text.splitlines():
                return short(text)
            await anyio.sleep(0.2)
    raise CheckFailed(f"{want} not among allowed directories: {short(text)}")


async def fs_read_file(ctx: Ctx) -> str:
    content = f"written by mcp_client_check {RUN_ID}\n"
    fd, path = tempfile.mkstemp(prefix="mesh-check-", suffix=".txt", dir=ctx.args.root)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        _, text = await call_ok(ctx, "read_text_file", {"path": os.path.realpath(path)})
        expect(text == content, f"read back {text!r}, wrote {content!r}")
        return f"read_text_file {os.path.basename(path)} round-tripped"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


# ---- suite: time (PyPI mcp-server-time) -------------------------------------------------------
async def time_tools_list(ctx: Ctx) -> str:
    names = await list_tool_names(ctx)
    expect(ctx.tool("get_current_time") in names, f"no {ctx.tool('get_current_time')!r} in {names}")
    return f"tools: {names}"


async def time_get_current(ctx: Ctx) -> str:
    result, text = await call_ok(ctx, "get_current_time", {"timezone": "UTC"})
    data = result.structured_content or {}
    expect(data.get("timezone") == "UTC" or "UTC" in text, f"no UTC in result: {short(text)}")
    return short(text)


Check = Callable[[Ctx], Awaitable[str]]
SUITES: dict[str, list[tuple[str, Check]]] = {
    "everything": [
        ("initialize", check_initialize),
        ("tools/list", ev_tools_list),
        ("tools/call echo", ev_echo),
        ("progress", ev_progress),
        ("sampling", ev_sampling),
        ("elicitation", ev_elicitation),
        ("resources", ev_resources),
        ("prompts", ev_prompts),
        ("completion", ev_completion),
        ("logging/setLevel", ev_set_level),
        ("ping", check_ping),
    ],
    "filesystem": [
        ("initialize", check_initialize),
        ("roots/list", fs_roots_requested),
        ("allowed directories", fs_allowed_directories),
        ("read file", fs_read_file),
    ],
    "time": [
        ("initialize", check_initialize),
        ("tools/list", time_tools_list),
        ("get_current_time", time_get_current),
    ],
}


# ---- reporting -------------------------------------------------------------------------------
class Report:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.done: dict[str, bool] = {}

    def emit(self, name: str, ok: bool, detail: str) -> None:
        self.done[name] = ok
        print(json.dumps({"check": name, "ok": ok, "detail": detail}, ensure_ascii=False), flush=True)

    def fail_rest(self, why: str) -> None:
        """Fail every unreported check: the first with the cause, the rest as not run."""
        first = True
        for name in self.names:
            if name not in self.done:
                self.emit(name, False, why if first else f"not run: {why}")
                first = False

    def finish(self) -> int:
        passed = sum(self.done.values())
        failed = len(self.done) - passed
        print(f"{passed} passed, {failed} failed", flush=True)
        return 0 if failed == 0 else 1


# ---- connection ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace, seen: Seen) -> AsyncIterator[tuple[Any, Any]]:
    if args.stdio:
        argv = shlex.split(args.stdio)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        async with stdio_client(params) as streams:
            yield streams
        return
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    # Short connect/write limits so a dead URL fails fast; reads stay long because the
    # server→client SSE stream may sit idle between messages.
    timeout = httpx2.Timeout(10.0, read=300.0)

    async def on_response(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            seen.http_errors.append(f"HTTP {response.status_code} on {response.request.method}")

    hooks = {"response": [on_response]}
    async with httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks=hooks) as http:
        async with streamable_http_client(args.url, http_client=http) as streams:
            yield streams


async def run(args: argparse.Namespace, report: Report) -> None:
    seen = Seen()
    checks = SUITES[args.suite]
    try:
        with anyio.fail_after(args.timeout):
            async with connect(args, seen) as (read, write):
                async with ClientSession(read, write, **make_callbacks(seen, args.root)) as session:
                    ctx = Ctx(session=session, args=args, seen=seen)
                    for name, check in checks:
                        if name != "initialize" and ctx.init is None:
                            report.emit(name, False, "not run: initialize failed")
                            continue
                        http_errors_before = len(seen.http_errors)
                        try:
                            with anyio.fail_after(args.check_timeout):
                                detail = await check(ctx)
                            report.emit(name, True, detail)
                        except TimeoutError:
                            report.emit(name, False, f"timed out after {args.check_timeout:g}s")
                        except Exception as exc:  # noqa: BLE001 — every failure is a report line
                            report.emit(name, False, describe(exc, seen.http_errors[http_errors_before:]))
    except TimeoutError:
        report.fail_rest(f"overall timeout of {args.timeout:g}s reached")
    except Exception as exc:  # noqa: BLE001 — a dead transport fails the remaining checks
        report.fail_rest(describe(exc, seen.http_errors))
    report.fail_rest("session ended early")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:PORT/mcp")
    target.add_argument("--stdio", metavar="CMD", help="spawn CMD (shell-quoted) and speak stdio instead")
    parser.add_argument("--key", help="API key, sent as 'Authorization: Bearer KEY' (HTTP only)")
    parser.add_argument("--suite", required=True, choices=sorted(SUITES))
    parser.add_argument("--root", help="directory offered as the client's only root (filesystem suite)")
    parser.add_argument("--prefix", default="", help="prefix the mesh adds to tool/prompt names (default none)")
    parser.add_argument("--check-timeout", type=float, default=20.0, help="seconds per check (default 20)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole run (default 120)")
    args = parser.parse_args()
    if args.suite == "filesystem" and not (args.root and os.path.isdir(args.root)):
        parser.error("--suite filesystem needs --root DIR (an existing directory)")

    report = Report([name for name, _ in SUITES[args.suite]])

    # Backstop: if teardown itself stalls (a DELETE or a child that ignores SIGTERM), still
    # print the verdict and exit rather than hang the Rust test that spawned us.
    def on_alarm(signum: int, frame: Any) -> None:
        if all(name in report.done for name in report.names):
            report.emit("teardown", False, "session teardown stalled past the hard deadline")
        report.fail_rest("hard deadline reached")
        os._exit(report.finish() or 1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 15)

    anyio.run(run, args, report)
    signal.alarm(0)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
