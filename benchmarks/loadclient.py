"""Clients with a think time, as people with a page open: load.py's default load generator.

    python -m benchmarks.loadclient URL --connections 200 --think 0.5 --duration 60
        [--header 'Cookie: ...'] [--revalidate] [--timeout 5]

Each client is one keep-alive HTTP/1.1 connection on an asyncio loop: it starts at a random
moment within its first think time, then asks, reads the whole answer, waits its think
time, and asks again, revalidating with the last ETag it got if ``--revalidate``. Latency is
from the request's write to the answer's last byte; any lag of this process's own loop
counts in it, so the figures can only be worse than the server's. Stops after
``--duration`` seconds or at SIGINT, and prints one line ``RESULT {json}`` with the same
keys as load.py's wrk script (times in microseconds).

Why not wrk: with wrk's delay() hook, a trivial WSGI app answering in 1 ms showed a p99 of
200-550 ms at 400 requests a second here (gunicorn gthread and sync workers alike), so the
bound could not be told from the tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time
from urllib.parse import urlsplit


async def client(
    host: str,
    port: int,
    request: bytes,
    think: float,
    revalidate: bool,
    timeout: float,
    deadline: float,
    stats: dict,
    stop: asyncio.Event,
) -> None:
    await asyncio.sleep(random.uniform(0, think))
    reader = writer = None
    etag = None
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout
                )
            data = request
            if revalidate and etag:
                data = request[:-2] + b"If-None-Match: " + etag + b"\r\n\r\n"
            start = time.monotonic()
            writer.write(data)
            status, headers = await asyncio.wait_for(read_answer(reader), timeout)
            stats["latencies"].append(time.monotonic() - start)
        except TimeoutError:
            stats["timeout"] += 1
            writer = close(writer)
            continue
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats["read"] += 1
            writer = close(writer)
            await asyncio.sleep(0.1)
            continue
        if status == 304:
            stats["not_modified"] += 1
        elif not 200 <= status <= 299:
            stats["non2xx"] += 1
        etag = headers.get(b"etag", etag)
        if headers.get(b"connection", b"").lower() == b"close":
            writer = close(writer)
        try:
            await asyncio.wait_for(stop.wait(), think)
        except TimeoutError:
            pass
    close(writer)


def close(writer):
    if writer is not None:
        writer.close()
    return None


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    if status in (204, 304) or 100 <= status < 200:
        return status, headers
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # until the server closes
        headers[b"connection"] = b"close"
    return status, headers


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def main_async(args) -> dict:
    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", *args.header]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    stats = {"latencies": [], "not_modified": 0, "non2xx": 0, "timeout": 0, "read": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(
        *(
            client(
                url.hostname,
                url.port or 80,
                request,
                args.think,
                args.revalidate,
                args.timeout,
                deadline,
                stats,
                stop,
            )
            for _ in range(args.connections)
        )
    )
    lat = stats["latencies"]
    us = 1_000_000
    return {
        "requests": len(lat),
        "duration_us": int((time.monotonic() - started) * us),
        "non2xx": stats["non2xx"],
        "not_modified": stats["not_modified"],
        "connect": 0,
        "read": stats["read"],
        "write": 0,
        "timeout": stats["timeout"],
        "p50": int(percentile(lat, 50) * us),
        "p90": int(percentile(lat, 90) * us),
        "p99": int(percentile(lat, 99) * us),
        "max": int(max(lat, default=0) * us),
        "mean": sum(lat) / len(lat) * us if lat else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--think", type=float, required=True, help="seconds")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--revalidate", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
