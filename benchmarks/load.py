"""The dashboard under load while a pull runs: clients on the Images page and a pull's fragment.

    python -m benchmarks.load [--images-clients 100] [--fragment-clients 200]
                              [--images-think 1.0] [--fragment-think 0.5] [--client asyncio|wrk]
                              [--server uvicorn|gunicorn] [--workers 2] [--threads 8]
                              [--layers 3] [--layer-mb 80]
                              [--rate-mb 3] [--images 200] [--tags 600]

Starts privately, on a fresh DOCKWEB_DATA and store under the scratch directory: redis-server,
docker-registry, the Celery worker as root (tests.support.worker.CeleryWorker, threads pool)
and the web app as scripts/run serves it: uvicorn, ``--workers`` processes of dockweb.asgi
(``--server gunicorn``: gunicorn's gthread workers, ``--threads`` each, the ``serve``
extra, as it was served before). The pulled image is busybox plus
``--layers`` random layers of ``--layer-mb`` MB, through a proxy sending ``--rate-mb`` MB/s
per connection, so that the pull lasts about half a minute. Before each pull the database is
filled as images_page.py fills it (``--images`` images, ``--tags`` tags), and the image is
removed again after it (the pull's final mirror deletes the synthetic rows: they are in no
store), so both pulls start from the same database and an empty store.

1. The pull alone: its time, started to finished, as the worker records it.
2. The same pull again while two load generators run at once, logged in by session cookie
   (``--client asyncio``, the default: benchmarks/loadclient.py, one process each, whose
   docstring says why not wrk; ``--client wrk``: wrk with its delay() hook):
   ``--images-clients`` connections on ``GET /images/`` and ``--fragment-clients`` on
   ``GET /pulls/<id>/`` with ``HX-Request: true`` (the fragment the pull page polls when
   its live stream is down; benchmarks/progress_latency.py measures the stream). Each
   connection is one client: it waits ``--fragment-think`` (htmx's ``every 500ms``,
   re-armed after each swap) or ``--images-think`` after each answer before asking again
   (0: as fast as the server answers, a saturation test rather than clients). Each client
   starts at a random moment within its first think time, as people open pages at
   different moments (``--no-start-spread``: all at once, and then in step). Clients
   revalidate as a browser's cache does (If-None-Match with the last ETag; answers of 304
   are counted, not errors) unless ``--no-revalidate``. The clients stop when the pull does
   (SIGINT), at the latest after three times the lone pull's time.

Per target: requests, errors (non-2xx, timeouts after ``--timeout``, socket errors) and
latency p50/p90/p99 (from send to the whole answer), then the pull's slowdown.
Bounds: no failed request, p99 < 300 ms for both, pull slowed by < 10 %. Exit status 1 if one
is missed. Run as root; about two minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import urllib3

from benchmarks import common
from benchmarks.common import log
from benchmarks.images_page import fill
from tests.support.worker import RedisServer

P99_BOUND_MS = 300.0
SLOWDOWN_BOUND = 0.10

# One connection per client: wait `think` ms after each answer (wrk's delay() hook), count
# every answer that is not 2xx or 304 (wrk itself counts only >= 400), print JSON at the end.
# With WRK_REVALIDATE=1 a client revalidates as a browser's cache does with the answers'
# `Cache-Control: private, no-cache` and ETag: If-None-Match with the last ETag it got (one
# per wrk thread, whose connections all share the same session).
# With WRK_START_SPREAD=1 each client starts at a random moment within its first think
# time (wrk calls delay() before a connection's first request too; the first
# WRK_CONNS_PER_THREAD calls of a thread are its connections' first), as people open their
# pages at different moments; without it, every client of a wrk process asks in the same
# instant and, with a fixed think time, they stay in step: waves of hundreds of requests.
WRK_SCRIPT = """
local think = tonumber(os.getenv("WRK_THINK_MS") or "0")
local revalidate = os.getenv("WRK_REVALIDATE") == "1"
local spread = os.getenv("WRK_START_SPREAD") == "1"
local per_thread = tonumber(os.getenv("WRK_CONNS_PER_THREAD") or "0")
local started = 0
local threads = {}
local etag = nil

function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end

function init(args)
    non2xx = 0
    not_modified = 0
    math.randomseed(os.time() * 100 + id)
end

function delay()
    if spread and started < per_thread then
        started = started + 1
        return math.random(0, think)
    end
    return think
end

function request()
    local headers = {}
    for k, v in pairs(wrk.headers) do
        headers[k] = v
    end
    if revalidate and etag then
        headers["If-None-Match"] = etag
    end
    return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
    if status == 304 then
        not_modified = not_modified + 1
    elseif status < 200 or status > 299 then
        non2xx = non2xx + 1
    end
    if headers["ETag"] then
        etag = headers["ETag"]
    end
end

function done(summary, latency, requests)
    local non2xx_total = 0
    local not_modified_total = 0
    for _, t in ipairs(threads) do
        non2xx_total = non2xx_total + t:get("non2xx")
        not_modified_total = not_modified_total + t:get("not_modified")
    end
    local e = summary.errors
    io.write(string.format(
        '\\nRESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "not_modified": %d, '
        .. '"connect": %d, "read": %d, "write": %d, "timeout": %d, "p50": %d, "p90": %d, '
        .. '"p99": %d, "max": %d, "mean": %.0f}\\n',
        summary.requests, summary.duration, non2xx_total, not_modified_total, e.connect,
        e.read, e.write,
        e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
end
"""


class Gunicorn(common.WebServer):
    """``gunicorn dockweb.wsgi`` on a free loopback port, gthread workers."""

    name = "gunicorn"

    def __init__(self, log_path: Path, workers: int, threads: int) -> None:
        super().__init__(log_path)
        self.workers = workers
        self.threads = threads

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "dockweb.wsgi:application",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.workers}",
            "--worker-class=gthread",
            f"--threads={self.threads}",
            "--keep-alive=75",  # longer than any think time: no close-vs-send race
            "--log-level=warning",
        ]


class Wrk:
    """One wrk process against ``url``; ``result()`` stops it if still running."""

    def __init__(
        self,
        url: str,
        *,
        connections: int,
        think: float,
        duration: int,
        timeout: float,
        headers: dict[str, str],
        script: Path,
        log_path: Path,
        revalidate: bool,
        start_spread: bool,
        tool: str = "asyncio",
    ) -> None:
        self.log_path = log_path
        if tool == "asyncio":  # benchmarks/loadclient.py; spread starts always
            cmd = [
                sys.executable, "-m", "benchmarks.loadclient", url,
                f"--connections={connections}", f"--think={think:g}",
                f"--duration={duration}", f"--timeout={timeout:g}",
                *(f"--header={k}: {v}" for k, v in headers.items()),
                *(["--revalidate"] if revalidate else []),
            ]  # fmt: skip
            self._log = open(log_path, "wb")
            self._proc = subprocess.Popen(
                cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=common.REPO_ROOT
            )
            return
        threads = 2
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            f"--timeout={timeout:g}s",
            "-s",
            str(script),
        ]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(url)
        env = dict(
            os.environ,
            WRK_THINK_MS=str(int(think * 1000)),
            WRK_REVALIDATE="1" if revalidate else "0",
            WRK_START_SPREAD="1" if start_spread else "0",
            WRK_CONNS_PER_THREAD=str(connections // threads),  # wrk's split
        )
        self._log = open(log_path, "wb")
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def result(self) -> dict:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # wrk stops and prints its summary
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
        text = self.log_path.read_text()
        for line in text.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[len("RESULT ") :])
                r["errors"] = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
                return r
        raise RuntimeError(f"wrk printed no result ({self.log_path}):\n{text[-2000:]}")


def reset_images() -> None:
    """Drop every image row and refill: the same database before each pull."""
    from images.models import Image, Layer, Repository

    Image.objects.all().delete()
    Layer.objects.all().delete()
    Repository.objects.all().delete()


def pull_once(reference: str, during=None) -> tuple[float, object]:
    """Pull ``reference`` (a fresh store), ``during(pull)`` started right after it is queued
    and its value returned; then remove the image. Returns (seconds, during's value)."""
    from images import services
    from images.models import Pull

    pull = services.start_pull(reference)
    running = during(pull) if during else None
    deadline = time.monotonic() + 300
    while pull.is_active and time.monotonic() < deadline:
        time.sleep(0.1)
        pull.refresh_from_db()
    value = running() if running else None
    if pull.status != Pull.Status.DONE:
        raise RuntimeError(f"pull {reference}: {pull.status}: {pull.error}")
    seconds = (pull.finished_at - pull.started_at).total_seconds()
    common.remove_image(reference)
    return seconds, value


def row(name: str, clients: int, think: float, r: dict) -> str:
    rate = r["requests"] / (r["duration_us"] / 1e6)
    return (
        f"{name:<20} {clients:>4} clients (think {think * 1000:.0f} ms): "
        f"{r['requests']:>6} requests ({rate:.0f}/s, {r['not_modified']} answered 304), "
        f"{r['errors']} errors "
        f"(non-2xx {r['non2xx']}, timeout {r['timeout']}, socket "
        f"{r['connect'] + r['read'] + r['write']}), latency p50 {r['p50'] / 1000:.1f} ms, "
        f"p90 {r['p90'] / 1000:.1f} ms, p99 {r['p99'] / 1000:.1f} ms, max {r['max'] / 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images-clients", type=int, default=100)
    parser.add_argument("--fragment-clients", type=int, default=200)
    parser.add_argument("--images-think", type=float, default=1.0, help="seconds")
    parser.add_argument("--fragment-think", type=float, default=0.5, help="seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="a request's, seconds")
    parser.add_argument(
        "--client",
        choices=["asyncio", "wrk"],
        default="asyncio",
        help="the load generator: benchmarks/loadclient.py, or wrk with its delay() hook",
    )
    parser.add_argument(
        "--no-revalidate",
        dest="revalidate",
        action="store_false",
        help="clients send no If-None-Match (a browser with its cache disabled)",
    )
    parser.add_argument(
        "--no-start-spread",
        dest="start_spread",
        action="store_false",
        help="all clients start in the same instant (and so stay in step)",
    )
    parser.add_argument("--server", choices=["uvicorn", "gunicorn"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn: threads per process")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=80)
    parser.add_argument("--rate-mb", type=float, default=3.0, help="per connection")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--tags", type=int, default=600)
    args = parser.parse_args()
    if os.geteuid() != 0:
        log("load: run as root (the worker unpacks layers with their owners)")
        return 2
    if args.client == "wrk" and shutil.which("wrk") is None:
        log("load: wrk is missing: apt-get install wrk")
        return 2

    with common.scratch_dir("dockweb-load-") as scratch:
        script = scratch / "client.lua"
        script.write_text(WRK_SCRIPT)
        with RedisServer(scratch / "redis") as redis_server:
            common.setup_django(scratch, redis_server.url)
            log(f"building {args.layers} layers of {args.layer_mb} MB ...")
            image = common.random_image(scratch, args.layers, args.layer_mb)
            pulls = common.slow_pulls(scratch, redis_server.url, image, "bench/load", args.rate_mb)
            with (
                pulls as (reference, _worker),
                (
                    common.Uvicorn(scratch / "uvicorn.log", args.workers)
                    if args.server == "uvicorn"
                    else Gunicorn(scratch / "gunicorn.log", args.workers, args.threads)
                ) as server,
            ):
                cookie = common.signed_in_client().cookies["sessionid"].value
                total_mb = sum(la.size for la in image.layers) / 1e6
                print(
                    f"image: {len(image.layers)} layers, {total_mb:.0f} MB compressed, pulled "
                    f"at {args.rate_mb:g} MB/s per connection; "
                    + (
                        f"uvicorn {args.workers} workers"
                        if args.server == "uvicorn"
                        else f"gunicorn {args.workers} workers x {args.threads} threads"
                    )
                )

                reset_images()
                counts = fill(args.images, args.tags)
                log(f"pulling alone ({counts['images']} images, {counts['tags']} tags) ...")
                alone, _ = pull_once(reference)
                print(f"\npull alone: {alone:.2f} s")

                http = urllib3.PoolManager(retries=False)
                headers = {"Cookie": f"sessionid={cookie}"}
                resp = http.request("GET", server.url + "/images/", headers=headers)
                if resp.status != 200:
                    raise RuntimeError(f"GET /images/: {resp.status}")

                def load(pull):
                    duration = math.ceil(alone * 3)
                    common = {
                        "duration": duration,
                        "timeout": args.timeout,
                        "script": script,
                        "revalidate": args.revalidate,
                        "start_spread": args.start_spread,
                        "tool": args.client,
                    }
                    # check once that both answer 200 and the fragment is the polling one
                    fragment_url = f"{server.url}/pulls/{pull.pk}/"
                    frag = http.request(
                        "GET", fragment_url, headers={**headers, "HX-Request": "true"}
                    )
                    if frag.status != 200 or b"pull-progress" not in frag.data:
                        raise RuntimeError(f"GET {fragment_url}: {frag.status}")
                    jobs = [
                        Wrk(
                            server.url + "/images/",
                            connections=args.images_clients,
                            think=args.images_think,
                            headers=headers,
                            log_path=scratch / "wrk-images.log",
                            **common,
                        ),
                        Wrk(
                            fragment_url,
                            connections=args.fragment_clients,
                            think=args.fragment_think,
                            headers={**headers, "HX-Request": "true"},
                            log_path=scratch / "wrk-fragment.log",
                            **common,
                        ),
                    ]
                    return lambda: [job.result() for job in jobs]

                reset_images()
                fill(args.images, args.tags)
                log("pulling again under load ...")
                loaded, (images_r, fragment_r) = pull_once(reference, load)
                slowdown = loaded / alone - 1
                print(f"pull under load: {loaded:.2f} s, slowdown {slowdown * 100:+.1f} %")
                print(row("GET /images/", args.images_clients, args.images_think, images_r))
                print(
                    row(
                        "GET /pulls/<id>/ (HX)",
                        args.fragment_clients,
                        args.fragment_think,
                        fragment_r,
                    )
                )
                ok = (
                    images_r["errors"] == 0
                    and fragment_r["errors"] == 0
                    and images_r["p99"] < P99_BOUND_MS * 1000
                    and fragment_r["p99"] < P99_BOUND_MS * 1000
                    and slowdown < SLOWDOWN_BOUND
                )
                print(
                    f"bounds (no error, p99 < {P99_BOUND_MS:.0f} ms, slowdown < "
                    f"{SLOWDOWN_BOUND * 100:.0f} %): {'met' if ok else 'MISSED'}"
                )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
