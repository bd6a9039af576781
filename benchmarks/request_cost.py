"""CPU and queries of one request to the Images page and to the pull-progress fragment.

    python -m benchmarks.request_cost [--runs 200] [--images 200] [--tags 600]

In-process, through Django's WSGI handler as a server calls it (request signals, database
connections kept or closed as configured; Django's test Client skips closing connections
and so hid the cost of opening one per request), on a fresh SQLite database filled as
load.py fills it (200 images, 600 tags), signed in as a viewer, with a running pull of four
layers and a finished one, and the `reference=` filter with 40 stars (issue 17's
attack). Prints, per endpoint, the median CPU time of a request
(``time.process_time``, so what the server spends, not waits) and its queries: ``GET
/images/``, the fragment ``GET /pulls/<id>/`` with HX-Request, and each again with
``If-None-Match`` set to the ETag of the previous answer (a browser revalidating: a running
pull's fragment shows its speed and time left, which move with the clock, so it is rendered
again; a finished one's answers 304). These are the figures load.py's capacity math uses.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from types import SimpleNamespace

from benchmarks import common


class Wsgi:
    """GET through the WSGI application with a client's cookies, as a server would."""

    def __init__(self, cookies: str) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()
        self.cookies = cookies

    def get(self, path: str, **headers) -> SimpleNamespace:
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": self.cookies,
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            **headers,
        }
        status, response_headers = [], {}

        def start_response(line, pairs, exc_info=None):
            status.append(int(line.split()[0]))
            response_headers.update(pairs)

        body = b"".join(self.app(environ, start_response))
        return SimpleNamespace(status_code=status[0], headers=response_headers, content=body)


def make_pull(reference: str, status: str, finished_at, downloaded: int):
    """A pull of four 80 MB layers, each 1/4 of the way for a running one, complete for a
    finished one (241 MB in all, as load.py's image)."""
    from django.utils import timezone

    from images.models import Pull, PullLayer

    pull = Pull.objects.create(
        reference=reference,
        status=status,
        started_at=timezone.now(),
        finished_at=finished_at,
        total_bytes=241_000_000,
        downloaded_bytes=downloaded,
    )
    running = status == Pull.Status.RUNNING
    for i in range(4):
        PullLayer.objects.create(
            pull=pull,
            position=i,
            short_id=f"{i:012d}",
            digest=f"sha256:{i:064d}",
            status="Downloading" if running else "Pull complete",
            current=20_000_000 if running else 80_000_000,
            total=80_000_000,
        )
    return pull


def cpu_ms(client, path: str, runs: int, **headers) -> float:
    samples = []
    for _ in range(runs):
        start = time.process_time()
        resp = client.get(path, **headers)
        samples.append((time.process_time() - start) * 1000)
        assert resp.status_code in (200, 304), (path, resp.status_code)
    return statistics.median(samples)


def count_queries(connection, request) -> int:
    # not CaptureQueriesContext: request_started resets the connection's query log
    sql = []
    with connection.execute_wrapper(lambda execute, *a: sql.append(a[0]) or execute(*a)):
        request()
    return len(sql)


def _profile(client, path: str, headers: dict, sort: str, lines: int) -> None:
    """Fifty requests under cProfile, the ``lines`` costliest functions by ``sort`` printed
    (PROFILE=1)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(lambda: [client.get(path, **headers) for _ in range(50)])
    pstats.Stats(prof).sort_stats(sort).print_stats(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--tags", type=int, default=600)
    args = parser.parse_args()
    with common.scratch_dir("dockweb-request-cost-") as scratch:
        common.setup_django(scratch)
        from django.db import connection
        from django.utils import timezone

        from benchmarks.images_page import fill
        from images.models import Pull

        fill(args.images, args.tags)
        login = common.signed_in_client()
        now = timezone.now()
        pull = make_pull("bench/load:latest", Pull.Status.RUNNING, None, 80_000_000)
        done = make_pull("bench/done:latest", Pull.Status.DONE, now, 241_000_000)
        login.get("/images/")  # sets the CSRF cookie
        client = Wsgi("; ".join(f"{k}={v.value}" for k, v in login.cookies.items()))
        targets = [
            ("/images/", "/images/", {}),
            ("fragment", f"/pulls/{pull.pk}/", {"HTTP_HX_REQUEST": "true"}),
            ("done frag", f"/pulls/{done.pk}/", {"HTTP_HX_REQUEST": "true"}),
            # issue 17's attack: 40 stars no reference matches (49 s for 18 stars before the
            # linear path.Match), on the JSON API and on the page
            ("api 40*", "/api/images/?reference=" + "*" * 40 + "Q", {}),
            ("page 40*", "/images/?reference=" + "*" * 40 + "Q", {}),
        ]
        for name, path, headers in targets:
            client.get(path, **headers)  # the first answer also sets the CSRF cookie
            first = client.get(path, **headers)
            queries = count_queries(connection, lambda: client.get(path, **headers))  # noqa: B023
            ms = cpu_ms(client, path, args.runs, **headers)
            print(f"{name:9} 200: {ms:6.2f} ms CPU, {queries} queries")
            if os.environ.get("PROFILE"):
                _profile(client, path, headers, "cumulative", 40)
            etag = first.headers.get("ETag")
            if etag:
                conditional = {**headers, "HTTP_IF_NONE_MATCH": etag}
                status = client.get(path, **conditional).status_code
                queries = count_queries(connection, lambda: client.get(path, **conditional))  # noqa: B023
                ms = cpu_ms(client, path, args.runs, **conditional)
                print(f"{name:9} {status}: {ms:6.2f} ms CPU, {queries} queries")
                if os.environ.get("PROFILE"):
                    _profile(client, path, conditional, "tottime", 25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
