"""Agent episodes: environments (MCP servers, Python modules) and the loop that runs a tier in them."""
