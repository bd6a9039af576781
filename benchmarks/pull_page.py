"""The page path of a pull against the CLI's, and how honest its progress is.

    python -m benchmarks.pull_page [--runs 5] [--layers 3] [--layer-mb 20] [--rate-mb 0.4]

Starts, privately: redis-server, docker-registry on 127.0.0.1, one Celery worker per lane
as scripts/run starts them (tests.support.worker.lane_workers: pulls, builds, quick,
consoles) on a fresh DOCKWEB_DATA and store, and Django in this process (a signed-in test
client calls the JSON API as a person's script would; the page reads the same rows).

1. Page path vs CLI, alternating (which goes first alternates too), each pull after the
   image was removed (`dockweb rmi`):
   - CLI: `python -m dockweb.cli pull REF`, wall time of the command;
   - page: ``page_pull(client, REF)``: POST /api/pulls/, then GET /api/pulls/<id>/ every
     10 ms until the answer says done; the time from the POST to that answer. Also its
     parts (queued: POST to the worker's claim; work: claim to done, as the row records
     them; seen: done to the answer) and when the database mirror (Image row) and the
     explorer's analysis followed, which run after the row is done.
   Images: busybox plus `--layers` layers of `--layer-mb` MB of random data, and one of
   a single 1 MB layer.
2. Progress through a proxy sending each connection `--rate-mb` MB/s (0.4: the issue's
   400 KB/s): from the claim to the first layer rows in the API's answer, the longest time
   the downloaded byte count stood still while the pull ran, the speed and time left shown
   first after one second; and for the 1 MB image over loopback, whether the first answer
   that says done lists every layer with a final state.
3. Lanes: two pulls from a socket that never answers, a tag meanwhile, then their cancels.

Run as root (the worker unpacks layers with their owners). ``page_pull`` is for other
benchmarks too (benchmarks/pull.py's worker path): it needs `common.setup_django` and a
worker consuming the pulls lane.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import common
from benchmarks.common import log
from tests.support import images as im
from tests.support.registry import RegistryServer
from tests.support.worker import RedisServer, ThrottledProxy, lane_workers

FINAL_STATES = {"Pull complete", "Already exists"}


@dataclass
class PagePull:
    seconds: float  # POST to the first answer saying done
    queued: float  # POST (created_at) to the worker's claim (started_at)
    work: float  # claim to finished_at
    answer: dict  # the first answer that said the pull ended
    mirrored: float | None = None  # POST to the Image row's pulled_at (after done)


def page_pull_detail(client, reference: str, poll: float = 0.01, timeout: float = 600) -> PagePull:
    """Pull ``reference`` as the page does (POST /api/pulls/ with a signed-in Django test
    client) and poll its JSON until it ends. Raises RuntimeError unless it ended done."""
    from images.models import Image, Pull

    started = time.time()
    resp = client.post("/api/pulls/", {"reference": reference}, content_type="application/json")
    if resp.status_code != 202:
        raise RuntimeError(f"POST /api/pulls/ {reference}: {resp.status_code} {resp.content!r}")
    url = resp.json()["url"]
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(url).json()
        if not answer["active"]:
            seen = time.time()
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"pull {reference} still {answer['status']} after {timeout} s")
        time.sleep(poll)
    if answer["status"] != "done":
        raise RuntimeError(f"pull {reference}: {answer['status']}: {answer['error']}")
    row = Pull.objects.get(pk=answer["id"])
    result = PagePull(
        seconds=seen - started,
        queued=(row.started_at - row.created_at).total_seconds(),
        work=(row.finished_at - row.started_at).total_seconds(),
        answer=answer,
    )
    # the mirror follows the done row: wait for it (a few seconds at most)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        image = Image.objects.filter(image_id=answer["image_id"]).first()
        if image is not None and image.pulled_at and image.pulled_at.timestamp() >= started:
            result.mirrored = image.pulled_at.timestamp() - started
            break
        time.sleep(0.01)
    return result


def page_pull(client, reference: str) -> float:
    """Seconds from POST /api/pulls/ to the first answer saying the pull is done."""
    return page_pull_detail(client, reference).seconds


def operator_client():
    """A signed-in test client whose user may pull (after `common.setup_django`)."""
    from django.contrib.auth import get_user_model

    from access.roles import set_role

    client = common.signed_in_client()
    set_role(get_user_model().objects.get(username="bench"), "operator")
    return client


def cli(*args: str) -> float:
    """Wall time of ``python -m dockweb.cli ARGS`` on this process's store and database."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dockweb.cli", *args],
        cwd=common.REPO_ROOT,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"dockweb {' '.join(args)}: {proc.returncode}: {proc.stderr}")
    return took


def remove(reference: str) -> None:
    cli("rmi", reference)


def compare(client, reference: str, runs: int) -> None:
    page, line = [], []
    parts = []
    for run in range(runs):
        order = ("cli", "page") if run % 2 == 0 else ("page", "cli")
        for way in order:
            if way == "cli":
                line.append(cli("pull", "-q", reference))
            else:
                detail = page_pull_detail(client, reference)
                page.append(detail.seconds)
                parts.append(detail)
            remove(reference)
    extra = [p - c for p, c in zip(page, line, strict=True)]
    for name, times in (("CLI ", line), ("page", page)):
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"  {name} pull: {shown} s (median {statistics.median(times):.2f})")
    print(
        f"  page - CLI: median {statistics.median(extra):+.2f} s "
        f"(bound +0.30: {'met' if statistics.median(extra) <= 0.3 else 'MISSED'})"
    )
    queued = statistics.median(p.queued for p in parts)
    work = statistics.median(p.work for p in parts)
    after = statistics.median(p.seconds - p.queued - p.work for p in parts)
    print(
        f"  page parts (median): queued {queued:.3f} s, work {work:.3f} s, "
        f"seen after done {after:.3f} s"
    )
    states = sorted({la["status"] for p in parts for la in p.answer["layers"]})
    print(f"  page pulls' layer states: {', '.join(states)}")
    mirrored = [p.mirrored - p.seconds for p in parts if p.mirrored is not None]
    if mirrored:
        print(
            "  the mirror's pulled_at, after the done answer: "
            f"median {statistics.median(mirrored):+.3f} s"
        )


TRIGGER = re.compile(r'hx-trigger="every (\d+)ms"')
STATE = re.compile(r'<td class="state">([^<]*)</td>')
BYTES = re.compile(r'<span class="overall-bytes">(.*?)</span>', re.S)


REQUEST_TIMES: list[float] = []


def watch_page(client, pk: int) -> list[tuple[float, list[str], str, str]]:
    """Read the pull's page as a browser does: the page once, then its fragment at the
    interval the fragment itself asks for (hx-trigger), until it stops asking.
    [(time, layer states, the header's bytes text, status)]."""
    url = f"/pulls/{pk}/"
    seen = []
    headers = {}
    while True:
        asked = time.time()
        body = client.get(url, headers=headers).content.decode()
        REQUEST_TIMES.append(time.time() - asked)
        status = re.search(r'<span class="status status-(\w+)">', body)
        shown = " ".join(re.sub(r"<[^>]+>", "", BYTES.search(body).group(1)).split())
        seen.append((time.time(), STATE.findall(body), shown, status.group(1) if status else ""))
        trigger = TRIGGER.search(body)
        if trigger is None:
            return seen
        headers = {"HX-Request": "true"}
        time.sleep(int(trigger.group(1)) / 1000)


def progress(client, reference: str, rate: float) -> None:
    """A throttled pull watched on its page (and its speed read through the API)."""
    from images.models import Pull

    resp = client.post("/api/pulls/", {"reference": reference}, content_type="application/json")
    pk = resp.json()["id"]
    seen = watch_page(client, pk)
    row = Pull.objects.get(pk=pk)
    if row.status != "done":
        raise RuntimeError(f"pull {reference}: {row.status}: {row.error}")
    claimed = row.started_at.timestamp()
    rows = next(t for t, states, _b, _s in seen if states)
    changes, last = [], None
    for t, _states, shown, status in seen:
        if status == "running" and shown != last:
            changes.append(t)
            last = shown
    gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
    print(f"  pull took {seen[-1][0] - claimed:.1f} s at {rate / 1e6:g} MB/s per connection")
    print(f"  claim to the first layer rows on the page: {rows - claimed:.3f} s (bound 0.3)")
    print(
        f"  the page's bytes changed {len(changes)} times in {len(seen)} reads; longest "
        f"still: {max(gaps):.3f} s (bound 0.5), median {statistics.median(gaps):.3f} s"
    )
    first = next((shown for t, _st, shown, _s in seen if t - claimed >= 1 and "/s" in shown), "")
    print(f"  the header, first after 1 s: {first}")
    print(
        f"  a read of the page took {statistics.median(REQUEST_TIMES) * 1000:.0f} ms median, "
        f"{max(REQUEST_TIMES) * 1000:.0f} ms at most (this process also runs the proxy)"
    )


def fast_final_states(client, reference: str) -> None:
    detail = page_pull_detail(client, reference)
    layers = detail.answer["layers"]
    final = all(la["status"] in FINAL_STATES for la in layers)
    print(
        f"  {reference}: {detail.seconds:.3f} s; the first done answer lists {len(layers)} "
        f"layer(s): {', '.join(la['status'] for la in layers)} "
        f"({'every one final' if final and layers else 'NOT all final'})"
    )
    remove(reference)


def stuck_and_cancel(client, tagged: str) -> None:
    """Two pulls from a socket that never answers fill the pulls lane; a tag runs meanwhile;
    then each is cancelled through the API: the time until its row says cancelled."""
    import socket

    from images import services
    from images.models import Pull

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        stuck = [services.start_pull(f"{host}/stuck/{n}:1") for n in "ab"]
        for p in stuck:
            while p.status != Pull.Status.RUNNING:
                time.sleep(0.01)
                p.refresh_from_db()
        asked = time.time()
        op = services.start_tag(tagged, "bench/tagged:1")
        while op.is_active:
            time.sleep(0.01)
            op.refresh_from_db()
        print(f"  a tag while two pulls are stuck: {op.status} in {time.time() - asked:.3f} s")
        for p in stuck:
            asked = time.time()
            client.post(f"/api/pulls/{p.pk}/cancel/")
            while p.is_active:
                time.sleep(0.01)
                p.refresh_from_db()
            print(f"  cancel of a stuck pull: {p.status} after {time.time() - asked:.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=20)
    parser.add_argument("--rate-mb", type=float, default=0.4)
    parser.add_argument("--slow-mb", type=int, default=4, help="size of the throttled layer")
    parser.add_argument("--progress-only", action="store_true", help="skip the comparison")
    args = parser.parse_args()
    if os.geteuid() != 0:
        log("pull_page: run as root (the worker unpacks layers with their owners)")
        return 2
    with common.scratch_dir("dockweb-pull-page-") as scratch:
        with RedisServer(scratch / "redis") as redis_server:
            common.setup_django(scratch, redis_server.url)
            log(f"building {args.layers} layers of {args.layer_mb} MB ...")
            image = common.random_image(scratch, args.layers, args.layer_mb)
            slow = im.Image(
                [
                    im.busybox_layer(),
                    im.large_layer(args.slow_mb * 1_000_000, scratch / "s.blob", seed=9),
                ]
            )
            data = Path(os.environ["DOCKWEB_DATA"])
            workers = lane_workers(
                concurrency=2,
                db_path=data / "db.sqlite3",
                store_root=os.environ["DOCKWEB_ROOT"],
                data_dir=data,
                broker_url=redis_server.url,
                log_path=scratch / "worker.log",
            )
            with RegistryServer(scratch / "registry") as registry:
                rate = int(args.rate_mb * 1_000_000)
                with ThrottledProxy(registry.host, rate) as proxy:
                    im.push_image(registry.host, "bench/page", "latest", image)
                    # 1 MB of its own (no layer shared with the others)
                    fast = im.Image([im.large_layer(1_000_000, scratch / "f.blob", seed=11)])
                    im.push_image(registry.host, "bench/small", "latest", fast)
                    im.push_image(registry.host, "bench/slow", "latest", slow)
                    for worker in workers:
                        worker.start()
                    try:
                        client = operator_client()
                        big = f"{registry.host}/bench/page:latest"
                        small = f"{registry.host}/bench/small:latest"
                        mb = sum(la.size for la in image.layers) / 1e6
                        cases = (
                            ()
                            if args.progress_only
                            else ((small, "1 MB image"), (big, f"{mb:.0f} MB image"))
                        )
                        for ref, what in cases:
                            log(f"warming up {ref} ...")
                            cli("pull", "-q", ref)
                            remove(ref)
                            print(f"\npage path vs CLI, {what}, {args.runs} runs each:")
                            compare(client, ref, args.runs)
                        print("\nprogress of a throttled pull:")
                        progress(client, f"{proxy.host}/bench/slow:latest", rate)
                        print("\nlanes: two pulls stuck on a registry that never answers:")
                        cli("pull", "-q", small)
                        stuck_and_cancel(client, small)
                        remove("bench/tagged:1")
                        remove(small)
                        print("\na pull over loopback that ends before a page looks:")
                        for _ in range(3):
                            fast_final_states(client, small)
                    finally:
                        for worker in workers:
                            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
