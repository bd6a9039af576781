"""start_pull and run_pull against a real registry and store: rows, states, outcomes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from dockweb.runtime.errors import InvalidReference
from dockweb.runtime.registry import RegistryClient
from images import credentials, services
from images.models import Image, Pull, PullLayer
from images.services import pulls
from tests.support import images as im
from tests.support.registry import free_port, serve_private_app

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root"),
    # the progress writer is a thread with its own connection: rows must be committed
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def pair(registry):
    return im.push_shared_base_pair(registry.host, "pulls")


def _run(reference: str, **kw) -> Pull:
    p = services.start_pull(reference, **kw)
    services.run_pull(p.id)
    p.refresh_from_db()
    return p


def test_it_queues_a_normalized_pull(store):
    p = services.start_pull("busybox")
    assert (p.status, p.reference, p.normalized) == (
        "queued", "busybox", "docker.io/library/busybox:latest"
    )
    assert services.active_pulls().get() == p


def test_it_returns_the_pull_already_running_for_the_same_reference(store):
    first = services.start_pull("busybox")
    assert services.start_pull("docker.io/library/busybox:latest") == first
    assert services.start_pull("busybox", platform="linux/arm64") != first


def test_it_refuses_an_invalid_reference_or_platform(store):
    with pytest.raises(InvalidReference, match="invalid reference format"):
        services.start_pull("UPPER/case")
    with pytest.raises(ValueError, match="invalid platform"):
        services.start_pull("busybox", platform="linux/")
    assert not Pull.objects.exists()


def test_it_pulls_with_layer_rows_in_dockers_states(store, registry, pair):
    a, _ = pair
    ref = f"{registry.host}/pulls/a:1"
    p = _run(ref)

    assert p.status == "done", p.error
    assert p.status_text == f"Downloaded newer image for {ref}"
    assert p.messages == [
        "1: Pulling from pulls/a",
        f"Digest: {a.manifest_digest}",
        f"Status: Downloaded newer image for {ref}",
    ]
    assert (p.manifest_digest, p.image_id) == (a.manifest_digest, a.image_id)
    layers = list(p.layers.all())
    assert [(la.position, la.digest, la.status) for la in layers] == [
        (i, layer.digest, "Pull complete") for i, layer in enumerate(a.layers)
    ]
    assert [(la.short_id, la.current, la.total) for la in layers] == [
        (layer.digest[7:19], layer.size, layer.size) for layer in a.layers
    ]
    assert p.total_bytes == p.downloaded_bytes == sum(la.size for la in a.layers)
    assert p.percent == 100
    assert p.started_at <= p.finished_at
    assert Image.objects.get(image_id=a.image_id).pulled_at is not None


def test_it_says_up_to_date_and_already_exists(store, registry, pair):
    a, b = pair
    _run(f"{registry.host}/pulls/a:1")
    again = _run(f"{registry.host}/pulls/a:1")
    assert again.status_text == f"Image is up to date for {registry.host}/pulls/a:1"
    assert again.total_bytes == again.downloaded_bytes == 0

    other = _run(f"{registry.host}/pulls/b:1")
    assert [la.status for la in other.layers.all()] == [
        "Already exists", "Already exists", "Pull complete"
    ]
    # only what had to be downloaded counts
    assert other.total_bytes == other.downloaded_bytes == b.layers[2].size


def test_it_does_nothing_on_a_duplicate_delivery(store, registry, pair):
    p = _run(f"{registry.host}/pulls/a:1")
    finished = p.finished_at
    services.run_pull(p.id)
    p.refresh_from_db()
    assert (p.status, p.finished_at) == ("done", finished)

    running = Pull.objects.create(reference="x", normalized="docker.io/library/x:latest",
                                  status="running")
    services.run_pull(running.id)
    running.refresh_from_db()
    assert running.status == "running"
    assert not running.layers.exists()


def test_it_cancels_a_queued_pull_before_it_starts(store, registry):
    p = services.start_pull(f"{registry.host}/pulls/a:1")
    services.cancel_pull(p)
    assert p.status == "cancelled"
    services.run_pull(p.id)
    p.refresh_from_db()
    assert p.status == "cancelled"
    assert not store.images()


class _SlowClient(RegistryClient):
    """Serves blobs at ``rate`` bytes/s, so a pull is still running when it is cancelled."""

    rate = 2 << 20

    def open_blob(self, host, repo, digest, size=None):
        outer = super().open_blob(host, repo, digest, size)
        rate = self.rate

        class Slow:
            def __init__(self, raw):
                self.raw = raw

            def read(self, n=-1):
                data = self.raw.read(n)
                time.sleep(len(data) / rate)
                return data

        class Ctx:
            def __enter__(self):
                return Slow(outer.__enter__())

            def __exit__(self, *exc):
                return outer.__exit__(*exc)

        return Ctx()


def test_it_cancels_a_running_pull(store, registry, monkeypatch, tmp_path):
    big = im.Image([im.busybox_layer(), im.large_layer(8 << 20, tmp_path / "big.tar", "none")])
    im.push_image(registry.host, "pulls/big", "1", big)
    monkeypatch.setattr(pulls, "get_client", lambda credentials=None: _SlowClient())
    p = services.start_pull(f"{registry.host}/pulls/big:1")
    worker = threading.Thread(target=services.run_pull, args=[p.id])
    worker.start()
    deadline = time.monotonic() + 30
    while not PullLayer.objects.filter(pull=p, status="Downloading", current__gt=0).exists():
        assert time.monotonic() < deadline, "the pull never started downloading"
        time.sleep(0.05)
    services.cancel_pull(p)
    assert p.cancel_requested
    worker.join(30)
    assert not worker.is_alive()
    p.refresh_from_db()
    assert p.status == "cancelled"
    assert p.finished_at is not None
    assert not store.has_image(big.image_id)
    assert not Image.objects.filter(image_id=big.image_id).exists()


def test_it_records_a_missing_tag_in_dockers_words(store, registry):
    ref = f"{registry.host}/pulls/missing:9"
    p = _run(ref)
    assert p.status == "failed"
    assert p.error == f"manifest for {ref} not found: manifest unknown: manifest unknown"


def test_it_records_an_unreachable_registry_in_words(store, settings, monkeypatch):
    monkeypatch.setattr(
        pulls, "get_client",
        lambda credentials=None: RegistryClient(retries=1, timeout=(2.0, 2.0)),
    )
    p = _run(f"127.0.0.1:{free_port()}/nobody/here:1")
    assert p.status == "failed"
    assert "connection refused" in p.error.lower(), p.error


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    yield from serve_private_app(tmp_path_factory.mktemp("private"), "htpasswd")


def test_it_pulls_from_a_private_registry_with_saved_credentials(
    store, private_registry, monkeypatch, tmp_path
):
    server, image = private_registry
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    ref = f"{server.host}/private/app:1"
    refused = _run(ref)
    assert refused.status == "failed"
    assert refused.error == "unauthorized: authentication required"

    credentials.save_credential(server.host, server.username, server.password)
    p = _run(ref)
    assert p.status == "done", p.error
    assert p.image_id == image.image_id


def test_it_writes_progress_at_a_bounded_rate(store):
    p = Pull.objects.create(reference="x", normalized="docker.io/library/x:latest",
                            status="running")
    writes = []

    class Counting(services.PullProgress):
        def flush(self):
            if self.dirty:
                writes.append(time.monotonic())
            super().flush()

    progress = Counting(p, threading.Event(), interval=0.2).start()
    digest = "sha256:" + "ab" * 32
    progress({"kind": "message", "text": "1: Pulling from library/x"})
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 1.0:
        n += 1
        progress({"kind": "layer", "id": "abababababab", "digest": digest, "index": 0,
                  "status": "Downloading", "current": n, "total": 10**9})
    progress.close()

    assert len(writes) <= 1.0 / 0.2 + 2, f"{len(writes)} writes for {n} events"
    layer = PullLayer.objects.get(pull=p)
    assert (layer.status, layer.current, layer.total) == ("Downloading", n, 10**9)
    p.refresh_from_db()
    assert (p.total_bytes, p.downloaded_bytes) == (10**9, n)
    assert p.messages == ["1: Pulling from library/x"]


def test_it_stops_when_cancel_is_requested_in_the_database(store):
    p = Pull.objects.create(reference="x", normalized="docker.io/library/x:latest",
                            status="running")
    cancel = threading.Event()
    progress = services.PullProgress(p, cancel, interval=0.05).start()
    Pull.objects.filter(pk=p.pk).update(cancel_requested=True)
    assert cancel.wait(5)
    progress.close()
