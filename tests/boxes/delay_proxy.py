"""TCP forwarder that delays every chunk by a fixed latency each way: the `slow-network` fault.

    python delay_proxy.py --delay-ms 250 LISTEN_HOST:PORT=TARGET_HOST:PORT [...]

The kernel here has no sch_netem, so latency is added in user space in front of the box's sshd
and nginx (which move to internal ports while the fault is on). Order is kept per direction.
Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def sender() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> asyncio.Server:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pump(client_r, server_w, delay), _pump(server_r, client_w, delay), return_exceptions=True
        )

    return await asyncio.start_server(handle, *listen, reuse_address=True)


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=250.0)
    parser.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    servers = []
    for route in args.routes:
        listen, target = route.split("=")
        servers.append(await _serve(_addr(listen), _addr(target), args.delay_ms / 1000))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
