#!/usr/bin/env python3
"""oauth_e2e.py — log in to an MCP endpoint through the official Python SDK's OAuth client, headlessly.

The mesh is an OAuth 2.1 authorization server for its MCP endpoints. This script is the "real
client" side of that proof: it lets the PyPI `mcp` 2.x SDK's `OAuthClientProvider` do everything
a real MCP client does — 401 challenge, protected-resource and authorization-server discovery,
client registration (DCR), a URL client_id (CIMD) or a pre-registered client, PKCE, `resource`,
the RFC 9207 `iss` check, token exchange and, later, its own token refresh — and only stands in
for the human: the browser part (login form, consent form) is driven with a plain HTTP client
and a cookie jar.

    python oauth_e2e.py --url http://127.0.0.1:PORT/mcp/gateway/dev --email alice@example.com \
        --password secret --mode dcr --tool echo --arguments '{"message": "hi"}'
    ... --mode cimd --client-metadata-url https://127.0.0.1:TLSPORT/client.json --redirect-uri URI
    ... --mode preregistered --client-id my-client [--client-secret S --token-auth-method client_secret_basic]

In cimd mode --redirect-uri must be one the metadata document lists (cimd_server.py --redirect-uri).

Steps: open an MCP session (which triggers the whole OAuth flow), list tools, call --tool once,
wait — polling, bounded by --refresh-wait — until the SDK itself considers its access token
expired (the mesh runs with a short MESH_OAUTH_ACCESS_TTL_SECS), call --tool again (which makes
the SDK refresh), and check that the refresh really happened: a refresh_token grant was sent and
answered 200, no new authorization was needed, and the token storage received a second, different
access token and a rotated refresh token.

Output: on success, ONE JSON object as the last stdout line:
  {"tools": [...], "first": "<text of call 1>", "second": "<text of call 2>", "access_tokens": N,
   "refresh_rotated": true, "authorize_url": "<authorize URL the SDK built>", "registered": "<client_id>",
   "authorizations": N, "refreshes": N}
On any failure: exit 1 with "oauth_e2e: FAILED: <reason>" and the HTTP requests seen on stderr,
no JSON. Exit 2 for bad arguments. Nothing can hang: the run has one deadline (--timeout) and a
SIGALRM backstop ends the process even if teardown stalls.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import logging
import os
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx2
from mcp import ClientSession, types
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.exceptions import MCPError

warnings.filterwarnings("ignore", category=DeprecationWarning)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Failure(Exception):
    """A check failed; the message is the one-line reason printed on stderr."""


# ---- what happened on the wire ---------------------------------------------------------------
@dataclass
class Wire:
    """Every request the MCP client's HTTP client sent, including the ones the SDK's OAuth flow
    makes itself (httpx2 runs event hooks for auth-flow requests too). Used to prove which path
    the SDK took (registration or not, refresh or re-authorization) and for failure reports."""

    log: list[str] = field(default_factory=list)
    registrations: int = 0  # POSTs with a JSON body to a URL other than the MCP endpoint
    refreshes: list[int] = field(default_factory=list)  # HTTP status of each refresh_token grant
    code_grants: list[int] = field(default_factory=list)  # HTTP status of each authorization_code grant

    def hooks(self, mcp_url: str) -> dict[str, list[Any]]:
        async def on_response(response: httpx2.Response) -> None:
            request = response.request
            url = str(request.url.copy_with(query=None))
            line = f"{request.method} {url} -> {response.status_code}"
            ctype = request.headers.get("content-type", "")
            if request.method == "POST" and ctype.startswith("application/x-www-form-urlencoded"):
                grant = parse_qs(request.content.decode(errors="replace")).get("grant_type", [""])[0]
                if grant:
                    line += f" (grant_type={grant}{', Basic auth' if request.headers.get('authorization', '').startswith('Basic ') else ''})"
                if grant == "refresh_token":
                    self.refreshes.append(response.status_code)
                elif grant == "authorization_code":
                    self.code_grants.append(response.status_code)
            elif request.method == "POST" and ctype.startswith("application/json") and url != mcp_url.split("?")[0]:
                self.registrations += 1
                line += " (registration)"
            self.log.append(line)

        return {"response": [on_response]}


# ---- token storage ---------------------------------------------------------------------------
class MemoryStorage:
    """The SDK's TokenStorage, in memory, keeping every token set it was given so the run can
    prove a refresh stored new tokens (and not just that the client kept working)."""

    def __init__(self, client_info: OAuthClientInformationFull | None) -> None:
        self.tokens: OAuthToken | None = None
        self.history: list[OAuthToken] = []
        self.client_info = client_info
        self.client_info_sets = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.client_info_sets += 1


# ---- the "browser": login and consent pages --------------------------------------------------
@dataclass
class Form:
    id: str
    action: str
    method: str
    hidden: list[tuple[str, str]] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # visible input names
    buttons: list[tuple[str, str]] = field(default_factory=list)  # named submit buttons
    selects: dict[str, str] = field(default_factory=dict)  # select name -> its first option's value


class FormScanner(HTMLParser):
    """Collects the forms of a page. A real parser rather than a regex: attribute values are
    HTML-unescaped (&amp; &quot; &#39; ...) exactly as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._option_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = Form(id=a.get("id", ""), action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            return
        name = a.get("name", "")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                form.hidden.append((name, a.get("value", "")))
            elif kind == "submit":
                form.buttons.append((name, a.get("value", "")))
            else:
                form.fields.add(name)
        elif tag == "button" and name and a.get("type", "submit").lower() == "submit":
            form.buttons.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and self._select not in form.selects:
            if "value" in a:
                form.selects[self._select] = a["value"]
            else:
                self._option_text = []  # value is the option's text

    def handle_data(self, data: str) -> None:
        if self._option_text is not None:
            self._option_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._option_text is not None and self._form and self._select:
            self._form.selects.setdefault(self._select, "".join(self._option_text).strip())
            self._option_text = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._form = None


def find_form(page: str, form_id: str) -> Form | None:
    scanner = FormScanner()
    scanner.feed(page)
    scanner.close()
    return next((f for f in scanner.forms if f.id == form_id), None)


class LoopbackCookiePolicy(http.cookiejar.DefaultCookiePolicy):
    """Browsers treat http://127.0.0.1 and http://localhost as secure contexts and send `Secure`
    cookies there; Python's default policy would silently drop them over plain http. Everything
    else (domain, path, expiry) keeps the standard rules, so a wrongly scoped cookie still fails."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        if urlsplit(request.get_full_url()).hostname in LOOPBACK_HOSTS:
            return True
        return super().return_ok_secure(cookie, request)


class Browser:
    """Plays the user: GETs the authorization URL and answers the mesh's login and consent forms,
    following redirects by hand (a cookie jar, never auto-following) until one points at the
    client's redirect URI. It never fetches that URI — nothing has to listen there."""

    MAX_STEPS = 12

    def __init__(self, email: str, password: str, redirect_uri: str, timeout: float) -> None:
        self.email = email
        self.password = password
        self.redirect_uri = redirect_uri
        self.timeout = timeout
        self.trace: list[str] = []  # one line per step, for failure messages
        self.authorize_urls: list[str] = []
        self.error: str | None = None

    async def redirect_handler(self, url: str) -> None:
        # Called by the SDK with the full authorization URL; the callback handler below runs
        # right after it and does the "browser" part.
        self.authorize_urls.append(url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        try:
            if not self.authorize_urls:
                raise Failure("SDK called the callback handler without a redirect to the authorization URL")
            return await self.authorize(self.authorize_urls[-1])
        except Failure as exc:
            # Raised inside the SDK's auth flow, this surfaces to the session only as a vague
            # transport error; keep the real reason for the report.
            self.error = str(exc)
            raise

    def _is_redirect_uri(self, location: str) -> bool:
        base = location.split("#", 1)[0].split("?", 1)[0]
        return base == self.redirect_uri

    async def authorize(self, url: str) -> AuthorizationCodeResult:
        jar = http.cookiejar.CookieJar(policy=LoopbackCookiePolicy())
        timeout = httpx2.Timeout(self.timeout)
        async with httpx2.AsyncClient(cookies=jar, follow_redirects=False, timeout=timeout) as web:
            request = web.build_request("GET", url)
            logins = 0
            for _ in range(self.MAX_STEPS):
                response = await web.send(request)
                step = f"{request.method} {request.url.copy_with(query=None)} -> {response.status_code}"
                if response.status_code in (301, 302, 303, 307, 308):
                    location = urljoin(str(response.url), response.headers.get("location", ""))
                    self.trace.append(f"{step} Location {location.split('?', 1)[0]}")
                    if self._is_redirect_uri(location):
                        return self._result(location)
                    request = web.build_request("GET", location)
                    continue
                self.trace.append(step)
                page = response.text
                if response.status_code == 200 and (form := find_form(page, "login")):
                    logins += 1
                    if logins > 1:
                        raise Failure(
                            "login page shown again after a successful login POST: the session cookie was not "
                            f"accepted (cookies held: {sorted(c.name for c in jar) or 'none'})"
                        )
                    missing = {"email", "password"} - form.fields
                    if missing:
                        raise Failure(f"login form has no input(s) {sorted(missing)}")
                    data = [*form.hidden, ("email", self.email), ("password", self.password)]
                    request = self._submit(web, response, form, data)
                    continue
                if response.status_code == 200 and (form := find_form(page, "consent")):
                    if ("decision", "allow") not in form.buttons:
                        raise Failure(f"consent form has no decision=allow button (buttons: {form.buttons})")
                    data = [*form.hidden, ("decision", "allow")]
                    # Several organisations: pick the first one offered.
                    data += [(name, value) for name, value in form.selects.items()]
                    request = self._submit(web, response, form, data)
                    continue
                if response.status_code == 401 and find_form(page, "login"):
                    raise Failure("login rejected (HTTP 401, login page shown again): wrong email or password?")
                if response.status_code == 429:
                    raise Failure("login rate-limited (HTTP 429)")
                snippet = " ".join(page.split())[:300]
                raise Failure(f"unexpected answer while authorizing: HTTP {response.status_code}: {snippet}")
        raise Failure(f"no redirect to {self.redirect_uri} after {self.MAX_STEPS} steps: {' | '.join(self.trace)}")

    def _submit(self, web: httpx2.AsyncClient, response: httpx2.Response, form: Form, data: list[tuple[str, str]]) -> httpx2.Request:
        if form.method != "post":
            raise Failure(f"form {form.id!r} has method {form.method!r}, expected post")
        action = urljoin(str(response.url), form.action or str(response.url))
        # Encoded here from a list of pairs: keeps duplicates and order, as a browser sends them.
        body = urlencode(data).encode()
        return web.build_request("POST", action, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    def _result(self, location: str) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(location).query)
        one = lambda key: query[key][0] if key in query else None  # noqa: E731
        if one("error"):
            raise Failure(f"authorization failed: error={one('error')} {one('error_description') or ''}".strip())
        if not one("code"):
            raise Failure(f"redirect to the client without a code: {location}")
        # iss is passed through untouched: the SDK checks it against the AS metadata issuer (RFC 9207).
        return AuthorizationCodeResult(code=one("code"), state=one("state"), iss=one("iss"))


# ---- the run -----------------------------------------------------------------------------------
def texts(result: types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def call_tool(session: ClientSession, name: str, arguments: dict[str, Any]) -> str:
    result = await session.call_tool(name, arguments)
    text = texts(result)
    if result.is_error:
        raise Failure(f"tool {name} returned isError: {text[:300]}")
    return text


async def list_tool_names(session: ClientSession) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(50):  # pagination, bounded
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            break
    return names


def build_provider(args: argparse.Namespace, storage: MemoryStorage, browser: Browser) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        redirect_uris=[args.redirect_uri],
        client_name="MCP Mesh oauth_e2e",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        # What DCR asks for; in CIMD mode the SDK uses "none" regardless, and a pre-registered
        # client's method comes from its stored record.
        token_endpoint_auth_method=args.token_auth_method if args.mode == "dcr" else None,
    )
    try:
        return OAuthClientProvider(
            server_url=args.url,
            client_metadata=metadata,
            storage=storage,
            redirect_handler=browser.redirect_handler,
            callback_handler=browser.callback_handler,
            client_metadata_url=args.client_metadata_url if args.mode == "cimd" else None,
        )
    except ValueError as exc:  # e.g. a client_metadata_url that is not https with a path
        raise Failure(str(exc)) from exc


async def run(args: argparse.Namespace, wire: Wire, browser: Browser, storage: MemoryStorage) -> dict[str, Any]:
    provider = build_provider(args, storage, browser)
    arguments = json.loads(args.arguments)
    # Short connect/write limits so a dead URL fails fast; reads stay long enough for a slow tool.
    timeout = httpx2.Timeout(15.0, read=60.0)
    async with httpx2.AsyncClient(auth=provider, timeout=timeout, event_hooks=wire.hooks(args.url)) as http:
        async with streamable_http_client(args.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                # The first request (initialize) is answered 401; the SDK then runs the whole flow.
                await session.initialize()
                tools = await list_tool_names(session)
                if args.tool not in tools:
                    raise Failure(f"tool {args.tool!r} not listed; tools: {tools}")
                first = await call_tool(session, args.tool, arguments)

                tokens = storage.tokens
                if tokens is None:
                    raise Failure("session works but the SDK stored no tokens")
                if tokens.expires_in is None:
                    raise Failure("token response has no expires_in: the SDK would never refresh")
                if not tokens.refresh_token:
                    raise Failure(f"no refresh_token issued (granted scope {tokens.scope!r}); the SDK cannot refresh")
                before = (len(browser.authorize_urls), len(wire.refreshes), tokens.access_token, tokens.refresh_token)

                # Let the access token run out as the SDK sees it (it refreshes proactively, only once
                # its own clock passes expires_in; it never refreshes on a 401). Poll, bounded.
                deadline = time.monotonic() + args.refresh_wait
                while provider.context.is_token_valid():
                    if time.monotonic() > deadline:
                        raise Failure(
                            f"access token still valid after {args.refresh_wait:g}s (expires_in={tokens.expires_in}); "
                            "is the mesh running with a short MESH_OAUTH_ACCESS_TTL_SECS?"
                        )
                    await anyio.sleep(0.05)

                # This call makes the SDK refresh before sending it.
                second = await call_tool(session, args.tool, arguments)

    authorizations, refreshes_before, access_before, refresh_before = before
    new_refreshes = wire.refreshes[refreshes_before:]
    if len(browser.authorize_urls) != authorizations:
        raise Failure(
            "the SDK authorized again instead of refreshing"
            + (f" (its refresh got HTTP {new_refreshes})" if new_refreshes else " (it sent no refresh_token grant)")
        )
    if not new_refreshes:
        raise Failure("no refresh_token grant was sent after the access token expired")
    if any(status != 200 for status in new_refreshes):
        raise Failure(f"refresh_token grant answered HTTP {new_refreshes}")
    final = storage.tokens
    assert final is not None
    if final.access_token == access_before:
        raise Failure("after the refresh the stored access token is unchanged")
    rotated = bool(final.refresh_token) and final.refresh_token != refresh_before
    if not rotated:
        raise Failure("refresh token not rotated: the refresh response carried no refresh_token, or the same one")

    client = storage.client_info
    registered = client.client_id if client else ""
    if args.mode == "cimd" and registered != args.client_metadata_url:
        raise Failure(
            f"CIMD not used, the SDK registered client_id {registered!r} instead: does the AS metadata say "
            "client_id_metadata_document_supported: true?"
        )
    if args.mode == "dcr" and wire.registrations != 1:
        raise Failure(f"expected one dynamic client registration, saw {wire.registrations}")
    if args.mode in ("cimd", "preregistered") and wire.registrations:
        raise Failure(f"mode {args.mode} must not register a client, but {wire.registrations} registration POST(s) were sent")
    if args.mode == "preregistered" and registered != args.client_id:
        raise Failure(f"pre-registered client_id {args.client_id!r} was replaced by {registered!r}")

    return {
        "tools": tools,
        "first": first,
        "second": second,
        "access_tokens": len({t.access_token for t in storage.history}),
        "refresh_rotated": rotated,
        "authorize_url": browser.authorize_urls[0] if browser.authorize_urls else "",
        "registered": registered,
        "authorizations": len(browser.authorize_urls),
        "refreshes": len(wire.refreshes),
    }


def describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping the exception groups anyio task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, Failure):
        return str(exc)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, httpx2.ConnectError):
        try:
            where = f" to {exc.request.url}"
        except RuntimeError:  # no request attached
            where = ""
        return f"cannot connect{where}: {exc}"
    return f"{type(exc).__name__}: {str(exc) or repr(exc)}"


class Captured(logging.Handler):
    """Keeps the SDK's own warnings/errors (e.g. 'OAuth flow error', 'Token refresh failed') so
    a failure report can quote them instead of the vaguer error the session ends with."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f" [{describe(record.exc_info[1])}]"
        self.lines.append(line)


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:PORT/mcp/gateway/dev")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--mode", required=True, choices=["dcr", "cimd", "preregistered"])
    parser.add_argument("--client-metadata-url", help="cimd: https URL of the client's metadata document, used as client_id")
    parser.add_argument("--client-id", help="preregistered: the client_id the mesh knows")
    parser.add_argument("--client-secret", help="preregistered: secret, for a confidential client (with --token-auth-method)")
    parser.add_argument(
        "--token-auth-method",
        default="none",
        choices=["none", "client_secret_basic", "client_secret_post"],
        help="dcr: method requested at registration; preregistered: method of the stored client (default none)",
    )
    parser.add_argument("--redirect-uri", help="default http://127.0.0.1:<free port>/callback (nothing listens there)")
    parser.add_argument("--tool", required=True, help="tool to call twice")
    parser.add_argument("--arguments", default="{}", help="tool arguments as a JSON object (default {})")
    parser.add_argument("--refresh-wait", type=float, default=30.0, help="max seconds to wait for the token to expire")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline for the whole run, seconds")
    parser.add_argument("--http-timeout", type=float, default=15.0, help="per-request timeout of the login/consent client")
    args = parser.parse_args()

    if args.mode == "cimd" and not args.client_metadata_url:
        parser.error("--mode cimd needs --client-metadata-url")
    if args.mode == "preregistered" and not args.client_id:
        parser.error("--mode preregistered needs --client-id")
    if args.mode == "preregistered" and (args.token_auth_method != "none") != bool(args.client_secret):
        parser.error("--client-secret goes with --token-auth-method client_secret_basic|client_secret_post")
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        parser.error(f"--arguments is not JSON: {exc}")
    if not isinstance(arguments, dict):
        parser.error("--arguments must be a JSON object")
    if urlsplit(args.url).scheme not in ("http", "https"):
        parser.error("--url must be an http(s) URL")
    args.redirect_uri = args.redirect_uri or f"http://127.0.0.1:{free_loopback_port()}/callback"
    return args


def main() -> int:
    args = parse_args()

    # Backstop: even a teardown that ignores cancellation cannot keep the test waiting.
    def on_alarm(signum: int, frame: Any) -> None:
        sys.stderr.write(f"oauth_e2e: FAILED: still running {args.timeout + 15:g}s after start, killed\n")
        sys.stderr.flush()
        os._exit(3)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 15)

    captured = Captured()
    logging.getLogger("mcp").addHandler(captured)
    logging.getLogger("mcp").propagate = False  # quoted in the failure report instead of raw tracebacks

    prefill = None
    if args.mode == "preregistered":
        # A stored client record means the SDK skips registration entirely.
        prefill = OAuthClientInformationFull(
            client_id=args.client_id,
            client_secret=args.client_secret,
            token_endpoint_auth_method=args.token_auth_method,
            redirect_uris=[args.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )
    storage = MemoryStorage(prefill)
    browser = Browser(args.email, args.password, args.redirect_uri, args.http_timeout)
    wire = Wire()

    async def with_deadline() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await run(args, wire, browser, storage)

    try:
        report = anyio.run(with_deadline)
    except BaseException as exc:  # noqa: BLE001 — every failure becomes one clear report
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        reason = f"timed out after {args.timeout:g}s" if isinstance(exc, TimeoutError) else describe(exc)
        if browser.error and browser.error != reason:
            reason = f"{browser.error} (then: {reason})"
        sys.stderr.write(f"oauth_e2e: FAILED: {reason}\n")
        for title, lines in (
            ("SDK log", captured.lines),
            ("MCP client HTTP requests", wire.log),
            ("browser steps", browser.trace),
        ):
            if lines:
                sys.stderr.write(f"  {title}:\n" + "".join(f"    {line}\n" for line in lines[-40:]))
        sys.stderr.flush()
        return 1
    finally:
        signal.alarm(0)

    for line in wire.log:
        sys.stderr.write(f"oauth_e2e: {line}\n")
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
