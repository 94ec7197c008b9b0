"""One of several unmodified mcp-mesh SDK agents offering the same capability, for the load
balancing test (#22): `date_service` (tag `system`) at version REPLICA_VERSION (default 1.0.0),
answering with its own name (REPLICA_NAME) so that the test can count who served each call; its
second tool offers another capability, which a selector of `date_service` does not expose."""

import os

import lifeline  # noqa: F401  (exits with the test)
import mesh
from fastmcp import FastMCP

NAME = os.environ.get("REPLICA_NAME", "replica")
VERSION = os.environ.get("REPLICA_VERSION", "1.0.0")

app = FastMCP("Replica")


@app.tool()
@mesh.tool(capability="date_service", tags=["system"], version=VERSION, description="Who answered")
def get_date() -> str:
    return f"served by {NAME}"


@app.tool()
@mesh.tool(capability="identity", description="Not the capability the test selects")
def whoami() -> str:
    return NAME


@mesh.agent(name=f"replica-{NAME}", version=VERSION, auto_run=True)
class Replica:
    pass
