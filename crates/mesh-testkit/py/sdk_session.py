"""sdk_session.py — the official Python SDK's client session over Streamable HTTP with an API key,
initialised, for the test clients beside it (`smart_client.py`, `code_client.py`,
`list_and_call.py`), which import it (a script's own folder is on Python's path).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

warnings.filterwarnings("ignore", category=DeprecationWarning)


@contextlib.asynccontextmanager
async def session(url: str, key: str, timeout: float = 30) -> AsyncIterator[ClientSession]:
    """An initialised session at `url`, sending `Authorization: Bearer <key>` on every request."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as s:
                await s.initialize()
                yield s


def dump(result) -> dict:
    """A result as the JSON a client received."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)
