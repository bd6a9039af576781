"""How late a pull's page shows the worker's progress, pushed over the live stream.

    python -m benchmarks.progress_latency [--clients 1,200] [--workers 2] [--layers 3]
                                          [--layer-mb 64] [--rate-mb 4]

Starts everything the dashboard runs on, privately: redis-server, docker-registry, the Celery
worker (tests.support.worker.CeleryWorker, threads pool) and the web server as scripts/run
serves it (uvicorn, ``--workers`` processes of dockweb.asgi), on a fresh DOCKWEB_DATA and
store under the scratch directory. Pushes an image of busybox plus ``--layers`` layers of
``--layer-mb`` MB of random data and pulls it through a proxy that sends each connection
``--rate-mb`` MB/s, so the pull lasts long enough to sample (over loopback it would take a
second). For each number of clients, the image is pulled (and removed again after):

- each client does what an open Pull page does (static/dockweb/dockweb.js with htmx's SSE
  extension): it holds ``GET /events/`` open with its session cookie and, on each
  ``pull-<id>`` event, fetches the pull's fragment (``GET /pulls/<id>/`` with ``HX-Request:
  true``) on a keep-alive connection of its own; an event that comes while a fetch is on
  its way asks for one more fetch after it (htmx's queue of the last trigger). It parses
  each layer row's ID, state and bytes, and stops once the fragment shows the pull over;
- a watcher thread reads the PullLayer rows every 10 ms and keeps every version the worker
  wrote, with its ``updated_at`` (the worker's clock, taken just before the write; same
  machine, same clock).

Figures, per number of clients (over all clients' answers; the first client's alone too):

- *first sight*: for every layer state (state and bytes as the row shows them) a client
  sees for the first time, its arrival time minus the ``updated_at`` of the write that
  produced it: the delay from the worker's write to the client seeing it (the write's
  commit, the notice through Redis, the event, the fetch and its answer).
- *staleness*: for every write, the time until the client first shows it or a newer
  version of that row.
- *errors*: answers other than 200, streams refused or ended before the pull, socket
  errors and timeouts (``--timeout``).

Both exclude the time between a runtime event and the write (at most the writer's interval,
DOCKWEB_PROGRESS_INTERVAL, 0.2 s). Bounds: first-sight p95 <= 100 ms with one client; no
error with any number. Exit status 1 if one is missed. Run as root (the worker unpacks
layers with their owners).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import statistics
import sys
import threading
import time

from benchmarks import common
from benchmarks.common import log, percentile
from tests.support.worker import RedisServer

BOUND = 0.1

ROW = re.compile(
    r'<td class="mono" title="[^"]*">([0-9a-f]{12})</td>\s*'
    r'<td class="state">([^<]*)</td>.*?'
    r'<td class="num nowrap">(.*?)</td>',
    re.S,
)
TAG = re.compile(r"<[^>]+>")


def figures(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"n={len(values)}  median {statistics.median(values) * 1000:.0f} ms  "
        f"p95 {percentile(values, 95) * 1000:.0f} ms  max {max(values) * 1000:.0f} ms"
    )


def shown_bytes(status: str, current: int, total: int) -> str:
    """The Bytes cell of a layer row, as pull_detail.html renders it (to match versions)."""
    from images.models import PullLayer
    from images.templatetags.dockweb_extras import size

    if status == "Already exists":
        return "—"
    if not total:
        return ""
    percent = PullLayer(status=status, current=current, total=total).percent
    return (f"{size(current)} / " if percent < 100 else "") + size(total)


class Watcher(threading.Thread):
    """Every version of every PullLayer row of one pull: short ID -> [(updated_at, shown)]."""

    def __init__(self, pull_id: int, period: float = 0.01) -> None:
        super().__init__(name="pull-layer-watcher", daemon=True)
        self.pull_id = pull_id
        self.period = period
        self.versions: dict[str, list[tuple[float, tuple[str, str]]]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from images.models import PullLayer

        try:
            while not self.stop.is_set():
                rows = PullLayer.objects.filter(pull_id=self.pull_id).values_list(
                    "short_id", "status", "current", "total", "updated_at"
                )
                for short, status, current, total, updated in rows:
                    history = self.versions.setdefault(short, [])
                    stamp = updated.timestamp()
                    if not history or history[-1][0] != stamp:
                        history.append((stamp, (status, shown_bytes(status, current, total))))
                time.sleep(self.period)
        finally:
            connection.close()


class Client:
    """One open Pull page: its event stream and its fetches (see the module)."""

    def __init__(self, host: str, port: int, cookie: str, pull_id: int, timeout: float):
        self.host, self.port = host, port
        self.cookie = cookie
        self.pull_id = pull_id
        self.timeout = timeout
        self.responses: list[tuple[float, float, dict]] = []
        self.errors: list[str] = []
        self.ready = asyncio.Event()
        self.wanted = asyncio.Event()
        self.done = asyncio.Event()

    def request(self, path: str, *headers: str) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"Cookie: sessionid={self.cookie}", *headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def run(self) -> None:
        stream = asyncio.create_task(self.stream())
        fetch = asyncio.create_task(self.fetcher())
        try:
            await self.done.wait()
        finally:
            stream.cancel()
            fetch.cancel()
            await asyncio.gather(stream, fetch, return_exceptions=True)

    def fail(self, what: str) -> None:
        self.errors.append(what)
        self.ready.set()
        self.done.set()

    async def stream(self) -> None:
        topic = f"pull-{self.pull_id}".encode()
        writer = None
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(self.request("/events/", "Accept: text/event-stream"))
            status, headers = await asyncio.wait_for(read_head(reader), self.timeout)
            if status != 200:
                return self.fail(f"stream: {status}")
            buffer = b""
            async for chunk in read_body(reader, headers, stream=True):
                if not self.ready.is_set() and chunk.startswith(b"retry:"):
                    self.ready.set()  # subscribed: the server sends this once it is
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                if any(b"event: " + topic + b"\n" in e + b"\n" for e in events):
                    self.wanted.set()
            if not self.done.is_set():
                self.fail("stream ended before the pull")
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as err:
            self.fail(f"stream: {err.__class__.__name__}: {err}")
        finally:
            if writer is not None:
                writer.close()

    async def fetcher(self) -> None:
        path = f"/pulls/{self.pull_id}/"
        request = self.request(path, "HX-Request: true")
        reader = writer = None
        try:
            while True:
                await self.wanted.wait()
                self.wanted.clear()
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                sent = time.time()
                writer.write(request)
                status, headers = await asyncio.wait_for(read_head(reader), self.timeout)
                body = b"".join([c async for c in read_body(reader, headers)])
                received = time.time()
                if status != 200:
                    return self.fail(f"fragment: {status}")
                text = body.decode()
                rows = {
                    short: (html.unescape(state.strip()), " ".join(TAG.sub("", cell).split()))
                    for short, state, cell in ROW.findall(text)
                }
                self.responses.append((sent, received, rows))
                if "hx-trigger=" not in text.split(">", 1)[0]:
                    self.done.set()  # the finished fragment no longer asks for updates
                    return
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as err:
            self.fail(f"fragment: {err.__class__.__name__}: {err}")
        finally:
            if writer is not None:
                writer.close()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str], stream=False):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    elif stream:
        while chunk := await reader.read(65536):
            yield chunk


def measure(watcher: Watcher, responses: list) -> dict:
    first_sight: list[float] = []
    staleness: list[float] = []
    unmatched = 0
    # for each row, the version index each response shows
    shown_index: dict[str, list[tuple[float, int]]] = {}
    for _sent, received, rows in responses:
        for short, content in rows.items():
            history = watcher.versions.get(short, [])
            index = None
            for i in range(len(history) - 1, -1, -1):
                if history[i][0] <= received and history[i][1] == content:
                    index = i
                    break
            if index is None:
                unmatched += 1
                continue
            marks = shown_index.setdefault(short, [])
            if not any(i == index for _t, i in marks):
                first_sight.append(received - history[index][0])
            marks.append((received, index))
    for short, history in watcher.versions.items():
        marks = shown_index.get(short, [])
        for i, (stamp, _content) in enumerate(history):
            later = [t for t, shown in marks if shown >= i]
            if later:
                staleness.append(min(later) - stamp)
    writes = sum(len(h) for h in watcher.versions.values())
    return {
        "first_sight": first_sight,
        "staleness": staleness,
        "unmatched": unmatched,
        "writes": writes,
    }


async def watch(clients: list[Client], start, deadline: float) -> None:
    runs = [asyncio.create_task(c.run()) for c in clients]
    # every page open (its stream subscribed), then the pull
    await asyncio.gather(*(c.ready.wait() for c in clients))
    await asyncio.to_thread(start)
    try:
        await asyncio.wait_for(asyncio.gather(*runs), deadline)
    except TimeoutError:
        for c in clients:
            if not c.done.is_set():
                c.errors.append("timeout: the pull did not end for this client")


def run_pass(n: int, reference: str, server, cookie: str, timeout: float) -> dict:
    from images import services
    from images.models import Pull

    # the row first, so that the clients know the pull's ID; its task is sent when the
    # clients' streams are open (a queued pull row waits for nothing else)
    pull = Pull.objects.create(
        reference=reference, normalized=services.normalize_reference(reference)
    )
    host, port = "127.0.0.1", server.port
    holder: dict = {}

    def start() -> None:
        from dockweb import jobs

        holder["started"] = time.monotonic()
        jobs.enqueue(pull)

    async def main() -> list[Client]:
        clients = [Client(host, port, cookie, pull.pk, timeout) for _ in range(n)]
        await watch(clients, start, 600)
        return clients

    watcher = Watcher(pull.pk)
    watcher.start()
    clients = asyncio.run(main())
    duration = time.monotonic() - holder["started"]
    time.sleep(0.2)  # the watcher reads the last write
    watcher.stop.set()
    watcher.join()
    pull.refresh_from_db()
    if pull.status != Pull.Status.DONE:
        raise RuntimeError(f"pull {reference}: {pull.status}: {pull.error}")
    each = [measure(watcher, c.responses) for c in clients]
    result = {
        "duration": duration,
        "first_sight": [v for m in each for v in m["first_sight"]],
        "staleness": [v for m in each for v in m["staleness"]],
        "first_client": each[0]["first_sight"],
        "unmatched": sum(m["unmatched"] for m in each),
        "writes": each[0]["writes"],
        "responses": sum(len(c.responses) for c in clients),
        "request": [r - s for c in clients for s, r, _rows in c.responses],
        "errors": [e for c in clients for e in c.errors],
    }
    common.remove_image(reference)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,200", help="open pages, one pass each")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=64)
    parser.add_argument("--rate-mb", type=float, default=4.0, help="per connection")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per answer")
    args = parser.parse_args()
    if os.geteuid() != 0:
        log("progress_latency: run as root (the worker unpacks layers with their owners)")
        return 2
    counts = [int(x) for x in args.clients.split(",")]

    with common.scratch_dir("dockweb-latency-") as scratch:
        with RedisServer(scratch / "redis") as redis_server:
            common.setup_django(scratch, redis_server.url)
            log(f"building {args.layers} layers of {args.layer_mb} MB ...")
            image = common.random_image(scratch, args.layers, args.layer_mb)
            pulls = common.slow_pulls(
                scratch, redis_server.url, image, "bench/latency", args.rate_mb
            )
            server = common.Uvicorn(scratch / "uvicorn.log", args.workers)
            with pulls as (reference, _worker), server:
                cookie = common.signed_in_client().cookies["sessionid"].value
                total_mb = sum(la.size for la in image.layers) / 1e6
                print(
                    f"image: {len(image.layers)} layers, {total_mb:.0f} MB compressed, "
                    f"pulled at {args.rate_mb:g} MB/s per connection; "
                    f"uvicorn, {args.workers} workers"
                )
                verdicts = []
                for n in counts:
                    log(f"pulling, {n} pages open ...")
                    r = run_pass(n, reference, server, cookie, args.timeout)
                    print(
                        f"\n{n} client(s): pull {r['duration']:.1f} s, {r['writes']} row "
                        f"writes, {r['responses']} fragment answers (request "
                        f"{statistics.median(r['request']) * 1000:.1f} ms median, p95 "
                        f"{percentile(r['request'], 95) * 1000:.1f} ms), "
                        f"{r['unmatched']} rows unmatched, {len(r['errors'])} errors"
                    )
                    for e in r["errors"][:5]:
                        print(f"  error: {e}")
                    print(f"  first sight of a state:  {figures(r['first_sight'])}")
                    print(f"  staleness of a write:    {figures(r['staleness'])}")
                    verdicts.append(not r["errors"])
                    if n == 1 and r["first_sight"]:
                        p95 = percentile(r["first_sight"], 95)
                        verdicts.append(p95 <= BOUND)
                        print(
                            f"  bound {BOUND * 1000:.0f} ms p95: "
                            f"{'met' if p95 <= BOUND else 'MISSED'} (p95 {p95 * 1000:.0f} ms)"
                        )
                    elif r["first_client"]:
                        print(f"  first client alone:      {figures(r['first_client'])}")
        return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
