"""A plain FastAPI + uvicorn app on 127.0.0.1: the floor of HTTP on this machine, for the stall test and
``benchmarks/routing_speed.py``.

    python tests/echo_app.py      prints "on http://127.0.0.1:PORT", then answers until killed

``GET /health`` answers ``{"status": "ok"}``; ``POST /echo`` answers its JSON body. uvicorn binds its
own socket (not ``serve``'s ``listening_socket``, so the stall test compares against uvicorn's way).
"""

import asyncio

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/echo")
async def echo(request: Request):
    return await request.json()


async def main() -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    print(f"on http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main())
