"""An MCP server over Streamable HTTP, by hand, with one tool whose result is SIZE bytes of text, sent
as MODE: json (application/json), sse (one server-sent event) or gzip (a small gzip of a large JSON
answer, sent although the client asked for none). Usage: big_result_http_server.py PORT SIZE MODE"""

import gzip
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

PORT, SIZE, MODE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


async def mcp(request):
    if request.method != "POST":
        return Response(status_code=405)
    msg = json.loads(await request.body())
    if msg.get("id") is None:
        return Response(status_code=202)
    method = msg.get("method")
    if method == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
               "serverInfo": {"name": "big", "version": "1"}}
    elif method == "tools/list":
        res = {"tools": [{"name": "big", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        res = {"content": [{"type": "text", "text": "x" * SIZE}]}
    else:
        res = {}
    body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}).encode()
    if MODE == "sse" and method == "tools/call":
        return Response(b"event: message\ndata: " + body + b"\n\n", media_type="text/event-stream")
    if MODE == "gzip" and method == "tools/call":
        return Response(gzip.compress(body), media_type="application/json", headers={"content-encoding": "gzip"})
    return Response(body, media_type="application/json")


app = Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST", "DELETE"])])
uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
