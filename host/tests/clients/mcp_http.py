"""The official MCP Python SDK's streamable-HTTP client against `boram serve`
(the MCP HTTP tests run it): connects to URL with a bearer token, in MODE
("legacy": the initialize handshake; "2026-07-28": stateless), lists the
tools, calls read_file on /workspace/diary.txt and an unknown tool, and
prints what it saw as one JSON object.

    python mcp_http.py URL TOKEN MODE
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, token: str, mode: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        tools = await client.list_tools()
        read = await client.call_tool("read_file", {"path": "/workspace/diary.txt"})
        try:
            await client.call_tool("no_such_tool", {})
            unknown = "no error"
        except Exception as error:  # the SDK raises the JSON-RPC error
            unknown = f"{type(error).__name__}: {error}"
        print(
            json.dumps(
                {
                    "protocol": client.protocol_version,
                    "server": client.server_info.name if client.server_info else None,
                    "tools": {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.tools},
                    "read": read.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "unknown": unknown,
                }
            )
        )


asyncio.run(main(*sys.argv[1:4]))
