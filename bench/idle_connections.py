"""Holds N keep-alive connections to a server, each having made one request
(GET /healthz), then idle: what 10,000 mostly idle Tencent connections cost.
python3 bench/idle_connections.py HOST PORT N   (prints "holding N" when ready)"""
import asyncio
import sys


async def hold(host, port, ready, stop):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: bench\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    ready.release()
    await stop.wait()
    writer.close()


async def main(host, port, n):
    ready, stop = asyncio.Semaphore(0), asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(hold(host, port, ready, stop)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)
    for _ in range(n):
        await ready.acquire()
    print(f"holding {n}", flush=True)
    await asyncio.Event().wait()


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
