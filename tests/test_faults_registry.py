"""Registry faults injected by a proxy (tests.support.faultproxy) during real pulls.

Transient faults (5xx, 429, resets, truncated or stalled transfers) are retried a bounded
number of times and the pull succeeds; persistent ones and corrupt bytes end in an error a
person can act on (through the runtime, images.services.run_pull and the CLI) and leave
nothing half-written: no layer for the broken blob, no image, no reference, tmp/ empty.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from dockweb.runtime.errors import DigestMismatch, DockwebError, RegistryError
from dockweb.runtime.pull import pull
from dockweb.runtime.registry import BlobReadError, RegistryClient
from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

RETRIES = 4


@pytest.fixture(scope="module")
def image(registry):
    top = im.Layer([im.dir_("data"), im.file("data/blob", os.urandom(400_000))])
    img = im.Image([im.busybox_layer(), top], {"Cmd": ["sh"]})
    im.push_image(registry.host, "faults/app", "1", img)
    return img


@pytest.fixture
def proxy(registry):
    with FaultProxy(registry.host) as p:
        yield p


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


def fast_client(read_timeout: float = 1.0) -> RegistryClient:
    """Short backoff and read timeout, so that giving up takes a second, not a minute."""
    return RegistryClient(
        retries=RETRIES, backoff=0.01, max_backoff=2.0, timeout=(2.0, read_timeout)
    )


def _pull(store, proxy, **kw):
    events = []
    client = kw.pop("client", None) or fast_client()
    result = pull(store, client, f"{proxy.host}/faults/app:1", on_progress=events.append, **kw)
    return result, events


def top_blob(image) -> str:
    return f"/blobs/{image.layers[1].digest}$"


def rate_limit_manifests(proxy) -> None:
    """Every manifest request, from now on, answered 429 with Docker Hub's rate-limit message."""
    proxy.inject(
        r"/manifests/",
        "status",
        count=None,
        status=429,
        retry_after="0",
        message="You have reached your pull rate limit.",
    )


def assert_pulled(store, image, result):
    assert result.image_id == image.image_id
    assert store.has_image(image.image_id)
    assert all(store.has_layer(c) for c in image.chain_ids)
    assert store.scratch_entries() == []


def assert_nothing_half_written(store, image):
    assert not store.has_image(image.image_id)
    assert not store.has_layer(image.chain_ids[1])
    assert store.references(image.image_id) == []
    assert store.all_references() == {}
    assert store.scratch_entries() == []
    # whatever is in layers/ is finished: its record is there and its link resolves
    for name in os.listdir(store.layers_dir):
        rec = store.get_layer("sha256:" + name)
        assert os.path.isdir(os.path.join(store.links_dir, rec.link))


# -- transient: bounded retries, then success ---------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_it_retries_a_server_error_on_the_manifest(store, proxy, image, status):
    proxy.inject(r"/manifests/1$", "status", count=2, status=status)
    result, _ = _pull(store, proxy)
    assert_pulled(store, image, result)
    assert proxy.requests[("GET", "/v2/faults/app/manifests/1")] == 3


def test_it_retries_a_server_error_on_a_layer(store, proxy, image):
    proxy.inject(top_blob(image), "status", count=2, status=503)
    result, _ = _pull(store, proxy)
    assert_pulled(store, image, result)
    assert proxy.gets(image.layers[1].digest) == 3


def test_it_waits_as_long_as_retry_after_says_on_429(store, proxy, image):
    proxy.inject(top_blob(image), "status", count=1, status=429, retry_after="1")
    started = time.monotonic()
    result, _ = _pull(store, proxy)
    assert time.monotonic() - started >= 0.9  # the backoff alone would be 10 ms
    assert_pulled(store, image, result)


def test_it_retries_a_connection_reset_before_the_answer(store, proxy, image):
    proxy.inject(top_blob(image), "reset", count=2, after=None)
    result, _ = _pull(store, proxy)
    assert_pulled(store, image, result)
    assert proxy.gets(image.layers[1].digest) == 3


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_it_downloads_a_layer_again_when_the_transfer_breaks_off(store, proxy, image, kind):
    proxy.inject(top_blob(image), kind, count=2, after=150_000)
    result, events = _pull(store, proxy)
    assert_pulled(store, image, result)
    assert proxy.gets(image.layers[1].digest) == 3
    statuses = [e["status"] for e in events if e["kind"] == "layer"]
    assert sum(s.startswith("Retrying in") for s in statuses) == 2


def test_it_retries_a_config_blob_cut_short(store, proxy, image):
    config = image.config_bytes
    digest = "sha256:" + __import__("hashlib").sha256(config).hexdigest()
    proxy.inject(f"/blobs/{digest}$", "truncate", count=1, after=len(config) // 2)
    result, _ = _pull(store, proxy)
    assert_pulled(store, image, result)


def test_it_times_out_a_transfer_stalled_mid_body_and_retries(store, proxy, image):
    proxy.inject(top_blob(image), "stall", count=1, after=100_000, seconds=8)
    started = time.monotonic()
    result, _ = _pull(store, proxy, client=fast_client(read_timeout=1.0))
    # the read timeout fired in the middle of the body, not after the 8 s stall
    assert time.monotonic() - started < 6
    assert_pulled(store, image, result)
    assert proxy.gets(image.layers[1].digest) == 2


# -- persistent: a clear error, nothing half-written ----------------------------------------


def test_it_gives_up_on_a_persistent_503_after_bounded_retries(store, proxy, image):
    proxy.inject(top_blob(image), "status", count=None, status=503)
    with pytest.raises(RegistryError, match="503 Service Unavailable|unavailable"):
        _pull(store, proxy)
    assert proxy.gets(image.layers[1].digest) == RETRIES
    assert_nothing_half_written(store, image)


def test_it_reports_a_rate_limit_in_the_registrys_words(store, proxy, image):
    rate_limit_manifests(proxy)
    with pytest.raises(RegistryError, match="toomanyrequests: You have reached your pull rate"):
        _pull(store, proxy)
    assert proxy.requests[("GET", "/v2/faults/app/manifests/1")] == RETRIES
    assert_nothing_half_written(store, image)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("reset", "connection reset by peer"),
        ("truncate", "unexpected EOF: the registry closed the connection early"),
    ],
)
def test_it_gives_up_on_a_layer_that_always_breaks_off(store, proxy, image, kind, message):
    proxy.inject(top_blob(image), kind, count=None, after=150_000)
    with pytest.raises(BlobReadError, match=message) as err:
        _pull(store, proxy)
    assert image.layers[1].digest in str(err.value)  # says which blob, and how far it got
    # an RST makes the kernel drop what was received but not read: the count may be lower
    assert re.search(rf"\(after \d+ of {image.layers[1].size} bytes\)$", str(err.value))
    assert proxy.gets(image.layers[1].digest) == RETRIES
    assert_nothing_half_written(store, image)


def test_it_gives_up_on_a_layer_that_always_stalls_with_timed_out(store, proxy, image):
    proxy.inject(top_blob(image), "stall", count=None, after=100_000, seconds=30)
    started = time.monotonic()
    with pytest.raises(BlobReadError, match="timed out: no data for 1 s"):
        _pull(store, proxy, client=fast_client(read_timeout=1.0))
    assert time.monotonic() - started < RETRIES * 1.0 + 5  # bounded, not 4 x 30 s
    assert_nothing_half_written(store, image)


def test_it_refuses_corrupted_bytes_without_retrying(store, proxy, image):
    proxy.inject(top_blob(image), "corrupt", count=None, after=200_000)
    with pytest.raises(
        DigestMismatch,
        match=f"filesystem layer verification failed for digest {image.layers[1].digest}",
    ):
        _pull(store, proxy)
    assert proxy.gets(image.layers[1].digest) == 1  # as dockerd: corruption is not retried
    assert_nothing_half_written(store, image)


def test_it_refuses_a_corrupted_manifest(store, proxy, image):
    proxy.inject(r"/manifests/1$", "corrupt", count=None, after=10)
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        _pull(store, proxy)
    assert_nothing_half_written(store, image)


# -- through the service (the Pull row) and the CLI (stderr) -------------------------------


@pytest.fixture
def service_store(settings, tmp_path, monkeypatch):
    from images import services
    from images.services import pulls

    settings.DOCKWEB_ROOT = tmp_path / "svc-store"
    monkeypatch.setattr(pulls, "get_client", lambda credentials=None: fast_client())
    return services.get_store()


def _run_pull(reference):
    from images import services

    row = services.start_pull(reference)
    services.run_pull(row.id)
    row.refresh_from_db()
    return row


@pytest.mark.django_db(transaction=True)
def test_it_records_a_transient_fault_as_a_done_pull(service_store, proxy, image):
    proxy.inject(top_blob(image), "reset", count=1, after=150_000)
    row = _run_pull(f"{proxy.host}/faults/app:1")
    assert (row.status, row.error, row.image_id) == ("done", "", image.image_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "kind,kw,message",
    [
        ("corrupt", {"after": 200_000}, "filesystem layer verification failed for digest"),
        ("reset", {"after": 150_000}, "connection reset by peer"),
        ("stall", {"after": 100_000, "seconds": 30}, "timed out: no data for 1 s"),
    ],
)
def test_it_puts_a_persistent_faults_message_in_the_pull_row(
    service_store, proxy, image, kind, kw, message
):
    from images.models import Image, Layer

    proxy.inject(top_blob(image), kind, count=None, **kw)
    row = _run_pull(f"{proxy.host}/faults/app:1")
    assert row.status == "failed"
    assert message in row.error and image.layers[1].digest in row.error
    assert_nothing_half_written(service_store, image)
    assert not Image.objects.filter(image_id=image.image_id).exists()
    assert not Layer.objects.filter(chain_id=image.chain_ids[1]).exists()


def _cli(tmp_path, *args):
    return run_dockweb(cli_env(tmp_path, store="cli-store"), *args)


def test_the_cli_prints_a_corrupt_layer_on_stderr(tmp_path, proxy, image):
    proxy.inject(top_blob(image), "corrupt", count=None, after=200_000)
    proc = _cli(tmp_path, "pull", f"{proxy.host}/faults/app:1")
    assert proc.returncode == 1
    assert (
        "Error response from daemon: filesystem layer verification failed for digest "
        f"{image.layers[1].digest}"
    ) in proc.stderr
    assert_nothing_half_written(Store(str(tmp_path / "cli-store")), image)


def test_the_cli_prints_a_rate_limit_on_stderr(tmp_path, proxy, image):
    rate_limit_manifests(proxy)
    proc = _cli(tmp_path, "pull", f"{proxy.host}/faults/app:1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error response from daemon: toomanyrequests: You have reached your pull rate limit."
    )
    assert proc.stdout == ""
    store = Store(str(tmp_path / "cli-store"))
    assert store.image_ids() == [] and store.scratch_entries() == []


def test_it_reports_an_unreachable_registry_without_retrying_forever(store, image):
    from tests.support.registry import free_port

    started = time.monotonic()
    with pytest.raises(DockwebError, match="connection refused"):
        pull(store, fast_client(), f"127.0.0.1:{free_port()}/faults/app:1")
    assert time.monotonic() - started < 5
