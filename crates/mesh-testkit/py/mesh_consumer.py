"""An unmodified mcp-mesh SDK agent for the registry tests (#22): its tool depends on
`date_service` with tag `system` and answers with what the resolved provider said, or
NO_PROVIDER while the dependency is unresolved."""

import lifeline  # noqa: F401  (exits with the test)
import mesh
from fastmcp import FastMCP

app = FastMCP("Consumer")


@app.tool()
@mesh.tool(
    capability="greeter",
    tags=["demo"],
    version="1.0.0",
    dependencies=[{"capability": "date_service", "tags": ["system"]}],
    description="Asks the date service",
)
async def ask_date(date_service: mesh.McpMeshTool | None = None) -> str:
    if date_service is None:
        return "NO_PROVIDER"
    return f"provider says: {await date_service()}"


@mesh.agent(name="consumer", version="1.0.0", auto_run=True)
class Consumer:
    pass
