"""An MCP server over stdio, by hand, whose tools/list has PAGES pages (argv[1]; none: without end)."""

import json
import sys

PAGES = int(sys.argv[1]) if len(sys.argv) > 1 else None

for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
               "serverInfo": {"name": "pager", "version": "1"}}
    elif msg.get("method") == "tools/list":
        page = int((msg.get("params") or {}).get("cursor") or 0)
        res = {"tools": [{"name": f"t{page}", "inputSchema": {"type": "object"}}]}
        if PAGES is None or page + 1 < PAGES:
            res["nextCursor"] = str(page + 1)
    else:
        continue
    if msg.get("id") is not None:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}) + "\n")
        sys.stdout.flush()
