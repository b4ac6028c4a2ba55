"""An MCP server over stdio, by hand, with one tool whose result is argv[1] bytes of text."""

import json
import sys

SIZE = int(sys.argv[1])

for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
               "serverInfo": {"name": "big", "version": "1"}}
    elif msg.get("method") == "tools/list":
        res = {"tools": [{"name": "big", "inputSchema": {"type": "object"}}]}
    elif msg.get("method") == "tools/call":
        res = {"content": [{"type": "text", "text": "x" * SIZE}]}
    else:
        continue
    if msg.get("id") is not None:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}) + "\n")
        sys.stdout.flush()
