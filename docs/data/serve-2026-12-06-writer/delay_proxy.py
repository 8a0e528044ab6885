"""A TCP proxy that holds every chunk for DELAY_MS / 2 each way: a database a round trip away.

There is no netem on the development VM (``tc qdisc add dev lo root netem`` answers
"Specified qdisc kind is unknown"), so this stands in for a network: the writer's
statements to Postgres through it each pay DELAY_MS more, in order, without being
slowed otherwise. Run it as its own process (not under the measured process's GIL):

    DELAY_MS=1 .venv/bin/python docs/data/serve-2026-12-06-writer/delay_proxy.py 6543 5432
"""

from __future__ import annotations

import asyncio
import os
import sys

HALF = float(os.environ.get("DELAY_MS", "1")) / 2000.0


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Forward chunks in order, each no earlier than HALF seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                writer.close()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(send())
    while True:
        chunk = await reader.read(65536)
        queue.put_nowait((loop.time() + HALF, chunk))
        if not chunk:
            break
    await sender


async def serve(listen: int, target: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
