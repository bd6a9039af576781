"""Pulls from registries that try to exhaust memory or time, or to collect credentials.

Each hostile registry (tests/support/hostile_registry.py) is pulled from by the runtime and
by `dockweb pull` as a person runs it. What must hold: a clear error; the bytes the server
managed to send stay far below what it offered (the client stops reading at the limit,
it does not read everything and check after); the peak RSS of the `dockweb pull` process,
measured by the kernel (wait4, through tests/support/peakrss.py), stays at or under 150 MB
although the server offers 1.5 to 8 GB; nothing is left in the store.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
import time

import pytest

from dockweb.runtime.auth import AuthConfig
from dockweb.runtime.errors import AuthError, RegistryError, RegistryUnavailable
from dockweb.runtime.pull import PullCancelled, pull
from dockweb.runtime.registry import (
    BlobReadError,
    BlobTooLarge,
    BodyTooLarge,
    RegistryClient,
)
from dockweb.runtime.store import Store
from tests.support import hostile_registry as hr
from tests.support import peakrss
from tests.support.cli import REPO, cli_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

RSS_LIMIT = 150 << 20
#: What a client that stops at its limit can have made the server send: the limit itself
#: plus what the loopback socket buffers absorb. Without the limits, gigabytes.
SENT_BOUND = 64 << 20
HUGE = 1536 << 20  # announced by the modes that send a Content-Length

HOST = r"127\.0\.0\.1:\d+"
EXPECTED = {
    "manifest-endless": (
        BodyTooLarge,
        rf"^manifest for {HOST}/hostile/app:1 \(application/vnd\.oci\.image\.manifest\.v1\+json\)"
        r" is larger than the 4 MiB limit: refused$",
    ),
    "manifest-huge": (
        BodyTooLarge,
        rf"^manifest for {HOST}/hostile/app:1 \(application/vnd\.oci\.image\.manifest\.v1\+json\)"
        r" is larger than the 4 MiB limit: refused$",
    ),
    "manifest-objects": (
        BodyTooLarge,
        rf"^manifest for {HOST}/hostile/app:1 holds more than 65536 JSON objects and arrays: "
        r"refused$",
    ),
    "index-huge": (
        BodyTooLarge,
        rf"^manifest for {HOST}/hostile/app:1 \(application/vnd\.oci\.image\.index\.v1\+json\)"
        r" is larger than the 4 MiB limit: refused$",
    ),
    "token-huge": (
        RegistryError,
        rf"^token request to http://{HOST}/token: the answer is larger than 1 MiB: refused$",
    ),
    "error-huge": (
        RegistryError,
        r"^received unexpected HTTP status: 404 Not Found \(its error body is larger than "
        r"64 KiB: not read\)$",
    ),
    "blob-longer": (
        BlobTooLarge,
        rf"^download blob sha256:[0-9a-f]{{64}} from {HOST}: blob larger than its descriptor: "
        r"the manifest says \d+ bytes, the registry announces \d+ bytes: refused$",
    ),
    "blob-endless": (
        BlobTooLarge,
        rf"^download blob sha256:[0-9a-f]{{64}} from {HOST}: blob larger than its descriptor: "
        r"the manifest says \d+ bytes, it sent more: refused$",
    ),
}
SIZES = {"manifest-huge": HUGE, "blob-longer": HUGE}


@pytest.fixture
def no_config(tmp_path):
    return str(tmp_path / "no-docker-config.json")


def hostile(mode: str) -> hr.HostileRegistry:
    return hr.HostileRegistry(mode, **({"size": SIZES[mode]} if mode in SIZES else {}))


def assert_store_clean(root) -> None:
    store = Store(str(root))
    assert store.image_ids() == []
    assert store.scratch_entries() == []


def run_pull_cli(tmp_path, reference: str, timeout: float = 120, **env: str):
    """`dockweb pull reference`; (exit code, stdout, stderr, peak RSS in bytes, seconds).

    The peak RSS is the kernel's ru_maxrss of that very process (tests/support/peakrss.py:
    not inflated by the test process's own memory, as a direct child's would be)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env.setdefault("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    environ = cli_env(tmp_path, **env)
    started = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        code, rss = peakrss.run(
            [sys.executable, "-m", "dockweb.cli", "pull", reference],
            cwd=REPO,
            env=environ,
            stdout=o,
            stderr=e,
            timeout=timeout,
        )
    elapsed = time.monotonic() - started
    return code, out.read_text(), err.read_text(), rss, elapsed


# -- bounded memory ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_the_runtime_refuses_what_is_over_its_limit_while_reading(mode, tmp_path, no_config):
    cls, message = EXPECTED[mode]
    with hostile(mode) as server:
        client = RegistryClient(auth_config_path=no_config)
        with pytest.raises(cls) as info:
            pull(Store(str(tmp_path / "store")), client, server.reference)
        time.sleep(0.2)  # let the server notice the hang-up before counting
        sent = server.sent
    assert re.search(message, str(info.value)), str(info.value)
    assert sent < SENT_BOUND, f"the server got {sent} bytes out: the client read on"
    assert not isinstance(info.value, BlobReadError)  # refused, not retried as transient
    assert_store_clean(tmp_path / "store")


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_dockweb_pull_stays_under_150_mb_and_says_why(mode, tmp_path):
    cls, message = EXPECTED[mode]
    with hostile(mode) as server:
        code, out, err, rss, _ = run_pull_cli(tmp_path, server.reference)
        time.sleep(0.2)
        sent = server.sent
    assert code == 1, (out, err)
    assert err.startswith("Error response from daemon: "), err
    assert re.search(message.lstrip("^"), err.strip()), err
    assert "Traceback" not in err
    assert rss <= RSS_LIMIT, f"peak RSS {rss >> 20} MiB"
    assert sent < SENT_BOUND, f"the server got {sent} bytes out"
    assert_store_clean(tmp_path / "store")


def test_a_blob_that_is_exactly_its_declared_size_is_pulled(tmp_path, no_config, registry):
    """The control: the size checks do not refuse an honest blob (nor its honest end)."""
    from tests.support import images as im

    image = hr.small_image()
    im.push_image(registry.host, "hostile/honest", "1", image)
    result = pull(
        Store(str(tmp_path / "store")),
        RegistryClient(auth_config_path=no_config),
        f"{registry.host}/hostile/honest:1",
    )
    assert result.image_id == image.image_id


# -- stalls and silent hosts -------------------------------------------------------------


def quick_client(no_config, **kw) -> RegistryClient:
    """1 s to connect, 2 s without a byte, 4 s in all for the attempts of one request."""
    kw.setdefault("timeout", (1.0, 2.0))
    kw.setdefault("deadline", 4.0)
    return RegistryClient(auth_config_path=no_config, backoff=0.05, **kw)


def test_a_stalled_blob_ends_with_a_timeout_within_the_deadline(tmp_path, no_config):
    with hr.HostileRegistry("blob-stall") as server:
        started = time.monotonic()
        with pytest.raises(BlobReadError, match=r"timed out: no data for 2 s \(after \d+ of"):
            pull(Store(str(tmp_path / "store")), quick_client(no_config), server.reference)
        elapsed = time.monotonic() - started
        gets = [p for _, p in server.requests if p.endswith(server.layer.digest)]
    # one 2 s wait fits the 4 s deadline, a third would not: two attempts, then the error
    assert len(gets) == 2
    assert elapsed < 15
    assert_store_clean(tmp_path / "store")


def test_dockweb_pull_of_a_stalled_blob_fails_after_the_read_timeout(tmp_path):
    with hr.HostileRegistry("blob-stall") as server:
        code, _, err, rss, elapsed = run_pull_cli(tmp_path, server.reference)
        gets = [p for _, p in server.requests if p.endswith(server.layer.digest)]
    assert code == 1
    assert re.search(r"timed out: no data for 20 s \(after \d+ of \d+ bytes\)$", err.strip()), err
    assert len(gets) == 1  # 20 s more would pass the 30 s deadline: not retried
    assert elapsed < 60
    assert rss <= RSS_LIMIT


@pytest.mark.parametrize(
    "accept, drop_syn",
    [(True, False), (False, False), (False, True)],
    ids=["accepts", "never-accepts", "drops-syn"],
)
def test_the_runtime_gives_up_on_a_silent_host_within_the_deadline(
    accept, drop_syn, tmp_path, no_config
):
    with hr.SilentServer(accept=accept, drop_syn=drop_syn) as server:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="timeout") as info:
            pull(Store(str(tmp_path / "store")), quick_client(no_config), server.reference)
        elapsed = time.monotonic() - started
    assert server.host in str(info.value)
    # HTTPS is tried first (1 s handshake), then plain HTTP (2 s without an answer, not
    # tried again: a second wait would pass the 4 s deadline)
    assert elapsed < 12, elapsed
    assert_store_clean(tmp_path / "store")


def test_dockweb_pull_gives_up_on_a_silent_host_in_about_30_s(tmp_path):
    with hr.SilentServer() as server:
        code, _, err, _, elapsed = run_pull_cli(tmp_path, server.reference)
    assert code == 1
    assert err.startswith("Error response from daemon: "), err
    assert f'"http://{server.host}/v2/": net/http: timeout awaiting response headers' in err
    assert "(no answer for 20 s)" in err
    assert elapsed < 50, elapsed  # 10 s for TLS, 20 s for HTTP, and start-up


@pytest.mark.parametrize("where", ["silent-host", "dropped-syn", "stalled-blob"])
def test_cancel_is_honoured_within_a_second_while_waiting_on_the_network(
    where, tmp_path, no_config
):
    if where == "stalled-blob":
        server = hr.HostileRegistry("blob-stall")
    else:  # a TLS handshake that gets no answer, or a TCP connect that gets none
        server = hr.SilentServer(drop_syn=where == "dropped-syn")
    cancel = threading.Event()
    outcome: dict = {}

    def run():
        try:
            # the default timeouts: 10 s to connect, 20 s to read, 30 s in all
            pull(
                Store(str(tmp_path / "store")),
                RegistryClient(auth_config_path=no_config),
                server.reference,
                cancel=cancel,
            )
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e
        outcome["ended"] = time.monotonic()

    with server:
        thread = threading.Thread(target=run)
        thread.start()
        if where == "stalled-blob":
            deadline = time.monotonic() + 10
            while server.sent == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.sent, "the layer download never started"
        time.sleep(1.0)  # now waiting on a socket: connect, TLS handshake, or the blob's rest
        assert thread.is_alive()
        cancelled_at = time.monotonic()
        cancel.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), PullCancelled), outcome
    # far below the 10 and 20 s timeouts the pull was waiting on
    assert outcome["ended"] - cancelled_at < 1.0
    assert_store_clean(tmp_path / "store")


# -- credentials and token realms --------------------------------------------------------


def test_saved_credentials_do_not_go_to_a_plain_http_realm_on_another_port(tmp_path, no_config):
    with hr.HostileRegistry("realm-elsewhere") as server:
        client = RegistryClient(
            credentials={server.host: (hr.USERNAME, hr.PASSWORD)}, auth_config_path=no_config
        )
        with pytest.raises(AuthError) as info:
            pull(Store(str(tmp_path / "store")), client, server.reference)
        seen = list(server.realm.seen)
    assert seen, "the token was not even asked for"
    assert all(auth is None for _, auth in seen), seen  # asked anonymously, no password
    assert str(info.value).startswith(f"pull access denied for {server.host}/hostile/app")
    assert (
        f"the saved credentials for {server.host} were not sent to the token service "
        f"{server.realm.url}: it is neither HTTPS nor a listed insecure registry"
    ) in str(info.value)


def test_an_identity_token_does_not_go_to_that_realm_either(tmp_path, no_config):
    with hr.HostileRegistry("realm-elsewhere") as server:
        creds = AuthConfig(identity_token="refresh-token-of-the-user")
        client = RegistryClient(credentials={server.host: creds}, auth_config_path=no_config)
        with pytest.raises(AuthError, match="were not sent to the token service"):
            pull(Store(str(tmp_path / "store")), client, server.reference)
        seen, forms = list(server.realm.seen), list(server.realm.forms)
    assert seen and forms == []  # asked with an anonymous GET, no OAuth2 form
    assert not any("refresh-token-of-the-user" in path for path, _ in seen)


def test_a_realm_listed_as_insecure_registry_gets_the_credentials(tmp_path, no_config):
    with hr.HostileRegistry("realm-elsewhere") as server:
        client = RegistryClient(
            credentials={server.host: (hr.USERNAME, hr.PASSWORD)},
            auth_config_path=no_config,
            insecure_registries=[server.realm.host],
        )
        result = pull(Store(str(tmp_path / "store")), client, server.reference)
        basic = server.realm.credentials_seen
    assert result.image_id == server.image.image_id
    expected = base64.b64encode(f"{hr.USERNAME}:{hr.PASSWORD}".encode()).decode()
    assert basic and set(basic) == {f"Basic {expected}"}


def _docker_config(tmp_path, host: str) -> str:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{hr.USERNAME}:{hr.PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return str(config_dir)


def test_dockweb_pull_keeps_credentials_from_a_realm_unless_it_is_listed(tmp_path):
    with hr.HostileRegistry("realm-elsewhere") as server:
        config = _docker_config(tmp_path, server.host)
        refused, _, err, _, _ = run_pull_cli(tmp_path / "a", server.reference, DOCKER_CONFIG=config)
        leaked_before = list(server.realm.credentials_seen)
        allowed, out, err2, _, _ = run_pull_cli(
            tmp_path / "b",
            server.reference,
            DOCKER_CONFIG=config,
            DOCKWEB_INSECURE_REGISTRIES=server.realm.host,
        )
        leaked_after = list(server.realm.credentials_seen)
    assert refused == 1
    assert "were not sent to the token service" in err, err
    assert leaked_before == []
    assert allowed == 0, err2
    assert out.splitlines()[-1] == server.reference
    assert leaked_after  # listed: the password went where it was allowed to
