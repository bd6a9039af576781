"""The Engine API's system, volume and network endpoints, driven by Debian's docker CLI
(20.10) and docker-py: info, system df, events (from the API and from the dockweb CLI on the
same store), volumes, and the predefined networks."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from tests.support.engineapi import request


@pytest.fixture(scope="module")
def image(registry, engine_api):
    """A busybox image pulled into the service's store by the dockweb CLI."""
    return engine_api.pulled_busybox(registry, "system/busybox")


def now() -> str:
    return f"{time.time():.9f}"


def events(api, since: str, until: str, *filters: str) -> list[dict]:
    args = ["events", "--since", since, "--until", until, "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    out = api.docker(*args, check=True, timeout=30).stdout
    return [json.loads(line) for line in out.splitlines()]


# -- info, system df ---------------------------------------------------------------------


def test_docker_info_prints_the_engine(engine_api, image):
    engine_api.dockweb("create", "--name", "sys-info", image, "true", check=True)
    try:
        proc = engine_api.docker("info", check=True)
    finally:
        engine_api.dockweb("rm", "sys-info", check=True)
    out = proc.stdout
    assert "Server:\n Containers: 1\n  Running: 0\n  Paused: 0\n  Stopped: 1\n" in out
    assert " Images: 1\n Server Version: 20.10.24\n Storage Driver: overlay\n" in out
    assert "  Supports d_type: true\n" in out
    assert " Logging Driver: json-file\n Cgroup Driver: cgroupfs\n" in out
    assert "  Volume: local\n  Network: bridge host null\n  Log: json-file\n" in out
    assert " Swarm: inactive\n" in out
    assert f" Docker Root Dir: {engine_api.base / 'store'}\n" in out
    assert " OSType: linux\n" in out and " Live Restore Enabled: false\n" in out
    assert "  127.0.0.0/8\n" in out
    assert "Error" not in proc.stderr


def test_docker_py_info(engine_api, image):
    info = engine_api.client().info()
    assert info["ServerVersion"] == "20.10.24"
    assert info["Images"] == 1 and info["OSType"] == "linux"
    assert info["DefaultRuntime"] in info["Runtimes"]
    assert len(info["ID"].split(":")) == 12
    assert info["ID"] == engine_api.client().info()["ID"]  # stable


def test_docker_system_df(engine_api, image):
    engine_api.docker("volume", "create", "sys-df", check=True)
    try:
        out = engine_api.docker("system", "df", check=True).stdout.splitlines()
        assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert out[1].startswith("Images ") and out[1].split()[1:3] == ["1", "0"]
        assert out[2].split()[:5] == ["Containers", "0", "0", "0B", "0B"]
        assert out[3].split()[:5] == ["Local", "Volumes", "1", "0", "0B"]
        assert out[4].split() == ["Build", "Cache", "0", "0", "0B", "0B"]
        verbose = engine_api.docker("system", "df", "-v", check=True).stdout
        assert verbose.startswith("Images space usage:\n\nREPOSITORY ")
        assert f"{image.rsplit(':', 1)[0]} " in verbose
        assert "Local Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\nsys-df" in verbose
        assert "Build cache usage: 0B\n" in verbose
        df = engine_api.client().df()
        assert set(df) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
        assert df["LayersSize"] > 0 and df["Images"][0]["RepoTags"] == [image]
        assert df["Volumes"][0]["Name"] == "sys-df"
        assert df["Volumes"][0]["UsageData"] == {"Size": 0, "RefCount": 0}
    finally:
        engine_api.docker("volume", "rm", "sys-df", check=True)


# -- volumes -----------------------------------------------------------------------------


def test_docker_volume_commands(engine_api, image):
    d = engine_api.docker
    assert d("volume", "create", "--label", "tier=db", "sys-v1", check=True).stdout == "sys-v1\n"
    assert d("volume", "create", "sys-v2", check=True).stdout == "sys-v2\n"
    try:
        out = d("volume", "ls", check=True).stdout
        assert out == "DRIVER    VOLUME NAME\nlocal     sys-v1\nlocal     sys-v2\n"
        out = d("volume", "ls", "-f", "label=tier=db", "--format", "{{.Name}} {{.Labels}}").stdout
        assert out == "sys-v1 tier=db\n"
        assert d("volume", "ls", "-q", "-f", "name=v2").stdout == "sys-v2\n"
        assert d("volume", "ls", "-q", "-f", "dangling=true").stdout == "sys-v1\nsys-v2\n"
        bad = d("volume", "ls", "-f", "nope=1")
        assert bad.returncode == 1
        assert bad.stderr == "Error response from daemon: Invalid filter 'nope'\n"
        info = json.loads(d("volume", "inspect", "sys-v1", check=True).stdout)[0]
        assert info["Name"] == "sys-v1" and info["Driver"] == "local"
        assert info["Labels"] == {"tier": "db"} and info["Scope"] == "local"
        assert info["Mountpoint"] == str(engine_api.base / "store/volumes/sys-v1/_data")
        missing = d("volume", "inspect", "sys-nope")
        assert (missing.returncode, missing.stderr) == (1, "Error: No such volume: sys-nope\n")
        opt = d("volume", "create", "-o", "type=tmpfs", "sys-v3")
        assert opt.returncode == 1 and "takes no options (given: type)" in opt.stderr
        drv = d("volume", "create", "-d", "nfs", "sys-v3")
        assert drv.stderr == (
            "Error response from daemon: create sys-v3: error looking up volume plugin nfs: "
            'plugin "nfs" not found\n'
        )

        cid = engine_api.dockweb(
            "create", "-v", "sys-v1:/data", image, "true", check=True
        ).stdout.strip()
        busy = d("volume", "rm", "sys-v1")
        assert busy.returncode == 1
        assert busy.stderr == (
            "Error response from daemon: remove sys-v1: volume is in use - [" + cid + "]\n"
        )
        assert d("volume", "ls", "-q", "-f", "dangling=false").stdout == "sys-v1\n"
        pruned = d("volume", "prune", "-f", check=True).stdout
        assert pruned == "Deleted Volumes:\nsys-v2\n\nTotal reclaimed space: 0B\n"
        engine_api.dockweb("rm", cid, check=True)
        assert d("volume", "rm", "sys-v1", check=True).stdout == "sys-v1\n"
        assert d("volume", "ls", "-q").stdout == ""
        gone = d("volume", "rm", "sys-v1")
        assert gone.stderr == "Error: No such volume: sys-v1\n"
    finally:
        d("volume", "rm", "-f", "sys-v1", "sys-v2")


def test_docker_py_volumes(engine_api):
    client = engine_api.client()
    vol = client.volumes.create("sys-py", labels={"a": "b"})
    assert vol.name == "sys-py" and vol.attrs["Labels"] == {"a": "b"}
    assert [v.name for v in client.volumes.list(filters={"label": "a=b"})] == ["sys-py"]
    assert client.volumes.get("sys-py").attrs["Driver"] == "local"
    client.volumes.get("sys-py").remove()
    import docker

    with pytest.raises(docker.errors.NotFound, match="get sys-py: no such volume"):
        client.volumes.get("sys-py")
    client.volumes.create("sys-py2")
    result = client.volumes.prune()
    assert result == {"VolumesDeleted": ["sys-py2"], "SpaceReclaimed": 0}
    status, _, body = request(
        engine_api,
        "POST",
        "/v1.41/volumes/prune?filters=" + quote(json.dumps({"until": ["1h"]})),
    )
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'until'"})


# -- networks ----------------------------------------------------------------------------


def test_docker_network_ls_and_inspect(engine_api):
    d = engine_api.docker
    out = d("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", check=True).stdout
    assert out.splitlines() == ["bridge bridge local", "host host local", "none null local"]
    ids = d("network", "ls", "-q", "--no-trunc", check=True).stdout.split()
    assert ids == d("network", "ls", "-q", "--no-trunc", check=True).stdout.split()
    host = json.loads(d("network", "inspect", "host", check=True).stdout)[0]
    assert host["Name"] == "host" and host["Driver"] == "host" and host["Id"] in ids
    by_id = json.loads(d("network", "inspect", host["Id"][:12], check=True).stdout)[0]
    assert by_id["Name"] == "host"
    none = json.loads(d("network", "inspect", "none", check=True).stdout)[0]
    assert d("network", "ls", "-q", "-f", "driver=null").stdout == none["Id"][:12] + "\n"
    assert d("network", "ls", "-q", "-f", "type=custom").stdout == ""
    missing = d("network", "inspect", "nope")
    assert (missing.returncode, missing.stderr) == (1, "Error: No such network: nope\n")
    rm = d("network", "rm", "host")
    assert "host is a pre-defined network and cannot be removed" in rm.stderr
    assert d("network", "prune", "-f", check=True).stdout == ""
    # user-defined networks: tests/test_dockerapi_networks.py


# -- events ------------------------------------------------------------------------------


def test_events_from_the_api_and_the_cli(engine_api, image):
    d = engine_api.docker
    since = now()
    cid = engine_api.dockweb("run", "-d", "--name", "sys-ev", image, "true", check=True)
    cid = cid.stdout.strip()
    assert engine_api.dockweb("wait", "sys-ev", check=True).stdout == "0\n"
    engine_api.dockweb("tag", image, "sys/tagged:1", check=True)
    d("volume", "create", "ev-vol-sys", check=True)  # through the API
    d("volume", "rm", "ev-vol-sys", check=True)
    engine_api.dockweb("rm", "sys-ev", check=True)
    until = now()

    got = events(engine_api, since, until)
    container = [(e["Action"], e["id"]) for e in got if e["Type"] == "container"]
    assert container == [
        ("create", cid),
        ("start", cid),
        ("die", cid),
        ("destroy", cid),
    ]
    die = next(e for e in got if e["Action"] == "die")
    assert die["Actor"]["Attributes"] == {"exitCode": "0", "image": image, "name": "sys-ev"}
    assert die["status"] == "die" and die["from"] == image and die["scope"] == "local"
    assert die["time"] == die["timeNano"] // 10**9
    tag = next(e for e in got if e["Action"] == "tag")
    assert tag["Type"] == "image" and tag["id"].startswith("sha256:")
    assert tag["Actor"]["Attributes"] == {"name": "sys/tagged:1"}
    volume = [(e["Action"], e["Actor"]) for e in got if e["Type"] == "volume"]
    assert volume == [
        ("create", {"ID": "ev-vol-sys", "Attributes": {"driver": "local"}}),
        ("destroy", {"ID": "ev-vol-sys", "Attributes": {"driver": "local"}}),
    ]

    bridge = json.loads(d("network", "inspect", "bridge", check=True).stdout)[0]["Id"]
    network = [(e["Action"], e["Actor"]) for e in got if e["Type"] == "network"]
    attrs = {"container": cid, "name": "bridge", "type": "bridge"}
    assert network == [
        ("connect", {"ID": bridge, "Attributes": attrs}),
        ("disconnect", {"ID": bridge, "Attributes": attrs}),
    ]

    # filters, as dockerd applies them
    only = events(engine_api, since, until, "type=container", "event=die")
    assert [e["Action"] for e in only] == ["die"]
    assert [e["Action"] for e in events(engine_api, since, until, "container=sys-ev")] == [
        "create",
        "start",
        "die",
        "destroy",
    ]
    by_image = events(engine_api, since, until, "image=sys/tagged")
    assert [e["Action"] for e in by_image] == ["tag"]
    assert [e["Action"] for e in events(engine_api, since, until, "volume=ev-vol-sys")] == [
        "create",
        "destroy",
    ]
    assert events(engine_api, since, until, "label=nope") == []

    # the docker CLI's own layout
    text = d("events", "--since", since, "--until", until, "--filter", "event=destroy").stdout
    assert text.rstrip("\n").endswith(f"container destroy {cid} (image={image}, name=sys-ev)")

    engine_api.dockweb("rmi", "sys/tagged:1", check=True)
    until2 = now()
    untag = events(engine_api, until, until2, "type=image")
    assert [(e["Action"], e["id"]) for e in untag] == [("untag", tag["id"])]

    # an exec through the dockweb CLI: exec_create, exec_start, exec_die
    engine_api.dockweb("run", "-d", "--name", "sys-exec", image, "sleep", "60", check=True)
    try:
        t0 = now()
        engine_api.dockweb("exec", "sys-exec", "sh", "-c", "exit 3")
        got = events(engine_api, t0, now(), "container=sys-exec")
        # a stop: the stop signal (sleep as PID 1 ignores it), SIGKILL, die, stop
        t1 = now()
        engine_api.dockweb("stop", "-t", "1", "sys-exec", check=True)
        stop = events(engine_api, t1, now(), "container=sys-exec")
    finally:
        engine_api.dockweb("rm", "-f", "sys-exec", check=True)
    assert [(e["Action"], e["Actor"]["Attributes"].get("signal")) for e in stop] == [
        ("kill", "15"),
        ("kill", "9"),
        ("die", None),
        ("stop", None),
    ]
    assert stop[2]["Actor"]["Attributes"]["exitCode"] == "137"
    assert [e["Action"] for e in got] == [
        "exec_create: sh -c exit 3",
        "exec_start: sh -c exit 3",
        "exec_die",
    ]
    assert len({e["Actor"]["Attributes"]["execID"] for e in got}) == 1
    assert got[2]["Actor"]["Attributes"]["exitCode"] == "3"
    fuzzy = events(engine_api, t0, now(), "event=exec_start")
    assert [e["Action"] for e in fuzzy] == ["exec_start: sh -c exit 3"]

    # an attached run with --rm, as docker run prints it
    engine_api.dockweb("run", "--rm", "--name", "sys-rm", image, "true", check=True)
    got = events(engine_api, until2, now(), "container=sys-rm")
    assert [e["Action"] for e in got] == ["create", "attach", "start", "die", "destroy"]


def test_events_stream_follows_until_the_client_goes(engine_api, image):
    client = engine_api.client()
    since = time.time()
    stream = client.events(decode=True, filters={"type": "volume"})
    # the stream is open: what happens now through the CLI comes through it
    engine_api.dockweb("volume", "create", "sys-follow", check=True)
    first = next(stream)
    assert (first["Action"], first["Actor"]["ID"]) == ("create", "sys-follow")
    assert client.info()["NEventsListener"] == 1
    stream.close()
    engine_api.dockweb("volume", "rm", "sys-follow", check=True)
    deadline = time.monotonic() + 10
    while client.info()["NEventsListener"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.info()["NEventsListener"] == 0
    until = time.time()
    past = list(client.events(decode=True, since=since, until=until, filters={"type": "volume"}))
    assert [(e["Action"], e["Actor"]["ID"]) for e in past] == [
        ("create", "sys-follow"),
        ("destroy", "sys-follow"),
    ]
    status, _, body = request(engine_api, "GET", "/v1.41/events?since=100&until=50")
    assert (status, json.loads(body)) == (
        400,
        {"message": "`since` time (100) cannot be after `until` time (50)"},
    )


def test_the_journal_is_bounded_and_a_follower_crosses_its_rotation(tmp_path, monkeypatch):
    import threading

    from dockweb.runtime import events as journal

    monkeypatch.setattr(journal, "MAX_BYTES", 2000)
    root = str(tmp_path)
    start = time.time_ns()
    seen: list[str] = []
    stop = threading.Event()

    def follow():
        for msg in journal.read(root, since_ns=start, follow=True, stopped=stop.is_set, poll=0.01):
            seen.append(msg["Actor"]["ID"])

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        for i in range(60):
            journal.volume(root, "create", f"v{i}")
            deadline = time.monotonic() + 10
            while len(seen) <= i and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        stop.set()
    reader.join(10)
    assert seen == [f"v{i}" for i in range(60)]
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("events.jsonl"))
    assert files == ["events.jsonl", "events.jsonl.1"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.glob("events.jsonl*"))
    replay = [m["Actor"]["ID"] for m in journal.read(root, since_ns=start)]
    assert replay[-1] == "v59" and len(replay) < 60  # the oldest are gone
    # a journal that cannot be written never fails the operation
    journal.volume(str(tmp_path / "missing" / "dir"), "create", "x")
