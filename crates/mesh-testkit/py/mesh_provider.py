"""An unmodified mcp-mesh SDK agent for the registry tests (#22): offers the `date_service`
capability (tag `system`, version 1.0.0). The registry URL, host and port come from the SDK's
own environment variables (MCP_MESH_REGISTRY_URL, MCP_MESH_HTTP_HOST, MCP_MESH_HTTP_PORT)."""

import lifeline  # noqa: F401  (exits with the test)
import mesh
from fastmcp import FastMCP

app = FastMCP("Provider")


@app.tool()
@mesh.tool(capability="date_service", tags=["system"], version="1.0.0", description="A fixed date")
def get_date() -> str:
    return "2024-01-01 (from the provider)"


@mesh.agent(name="provider", version="1.0.0", auto_run=True)
class Provider:
    pass
