"""desk_tools.py as a plain MCP server (stdio, or Streamable HTTP with --http PORT)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import desk_tools  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("desk")
for fn in (desk_tools.get_weather, desk_tools.add_note, desk_tools.count_notes, desk_tools.divide_numbers):
    server.add_tool(fn)

if __name__ == "__main__":
    if "--http" in sys.argv:
        port = int(sys.argv[sys.argv.index("--http") + 1])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run("stdio")
