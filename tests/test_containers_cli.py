"""The `dockweb` container and volume commands: docker 20.10's flags, columns and messages.

The first half needs no runtime (formatting and parsing); the second runs real busybox
containers through the CLI, as a person would.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta

import pytest

from dockweb.cli import files, observe, volumes
from dockweb.cli.main import build_parser
from dockweb.docker import ps
from dockweb.docker.formatter import format_rows
from dockweb.docker.gofmt import FormatError
from dockweb.docker.volumes import volume_rows
from dockweb.runtime.errors import DockwebError
from tests.support import images as im

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CID = "4f" * 32
IMAGE_ID = "sha256:" + "ab" * 32
ZERO = "0001-01-01T00:00:00Z"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def info(status="running", *, started=None, finished=None, exit_code=0, name="web",
         image="busybox", path="sh", args=("-c", "sleep 100"), created=None) -> dict:
    now = datetime.now(UTC)
    return {
        "Id": CID,
        "Created": iso(created or now - timedelta(minutes=2)),
        "Path": path,
        "Args": list(args),
        "State": {
            "Status": status, "Running": status in ("running", "paused"),
            "Paused": status == "paused", "Pid": 42, "ExitCode": exit_code,
            "StartedAt": iso(started) if started else ZERO,
            "FinishedAt": iso(finished) if finished else ZERO,
        },
        "Image": IMAGE_ID,
        "Name": "/" + name,
        "HostConfig": {"NetworkMode": "none", "AutoRemove": False},
        "Mounts": [],
        "Config": {"Image": image, "Labels": {"tier": "front"}},
    }


# -- no runtime needed ---------------------------------------------------------------------


def test_it_prints_dockers_ps_columns():
    now = datetime.now(UTC)
    s = ps.container_summary(info(started=now - timedelta(seconds=3)))
    out = format_rows(ps.ps_rows([s]), observe.ps_format(None, quiet=False, size=False),
                      observe.PS_HEADERS)
    header, row = out.splitlines()
    assert header == (
        "CONTAINER ID   IMAGE     COMMAND               CREATED         STATUS         "
        "PORTS     NAMES"
    )
    assert row.startswith(
        f"{CID[:12]}   busybox   \"sh -c 'sleep 100'\"   2 minutes ago   Up 3 seconds"
    )
    assert row.endswith("             web")


@pytest.mark.parametrize(
    "status,started,finished,code,text",
    [
        ("created", None, None, 0, "Created"),
        ("running", 5, None, 0, "Up 5 seconds"),
        ("paused", 5, None, 0, "Up 5 seconds (Paused)"),
        ("exited", 300, 120, 0, "Exited (0) 2 minutes ago"),
        ("exited", 300, 1, 137, "Exited (137) 1 second ago"),
        ("dead", 300, 120, 0, "Dead"),
    ],
)
def test_it_words_status_as_dockerd(status, started, finished, code, text):
    now = datetime.now(UTC)
    s = ps.container_summary(info(
        status,
        started=now - timedelta(seconds=started) if started else None,
        finished=now - timedelta(seconds=finished) if finished else None,
        exit_code=code,
    ))
    assert s["Status"] == text


def test_it_truncates_commands_and_quotes_them():
    s = ps.container_summary(info(path="sh", args=["-c", "echo a very long command line"]))
    row = ps.ps_rows([s])[0]
    assert row["Command"] == '"sh -c \'echo a very …"'
    full = ps.ps_rows([s], trunc=False)[0]
    assert full["Command"] == '"sh -c \'echo a very long command line\'"'
    assert full["ID"] == CID


def test_it_shows_the_image_as_given_and_short_ids():
    assert ps.image_column("busybox", IMAGE_ID, True) == "busybox"
    assert ps.image_column("docker.io/library/busybox:1.36", IMAGE_ID, True) == "busybox:1.36"
    assert ps.image_column(IMAGE_ID, IMAGE_ID, True) == "ab" * 6
    assert ps.image_column("", IMAGE_ID, True) == "<no image>"


def test_it_adds_size_and_quiet_formats():
    assert observe.ps_format(None, quiet=True, size=True) == "{{.ID}}"
    assert observe.ps_format(None, quiet=False, size=True).endswith("\t{{.Names}}\t{{.Size}}")
    s = ps.container_summary(info(), size=(1200, 4_260_000))
    assert ps.ps_rows([s])[0]["Size"] == "1.2kB (virtual 4.26MB)"


def test_it_filters_as_dockerd():
    now = datetime.now(UTC)
    up = ps.container_summary(info(started=now))
    down = dict(ps.container_summary(info("exited", started=now, finished=now, exit_code=3)))
    assert ps.filter_summaries([up, down], {"status": ["exited"]}) == [down]
    assert ps.filter_summaries([up, down], {"exited": ["3"]}) == [down]
    assert ps.filter_summaries([up], {"label": ["tier=front"]}) == [up]
    assert ps.filter_summaries([up], {"label": ["tier=back"]}) == []
    assert ps.filter_summaries([up], {"name": ["^we"]}) == [up]
    with pytest.raises(Exception, match="Invalid filter 'color'"):
        ps.filter_summaries([up], {"color": ["red"]})


def test_it_filters_by_order_volume_and_what_dockweb_lacks_as_dockerd():
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i, name in enumerate(["a", "b", "c"]):  # created 1 ms apart: the same second
        row = info(name=name, created=base + timedelta(milliseconds=i))
        row["Id"] = str(i) * 64
        rows.append(row)
    rows[1]["Mounts"] = [{"Type": "volume", "Name": "data", "Source": "/v/data/_data",
                          "Destination": "/srv"}]
    rows[2]["NetworkSettings"] = {"Networks": {"host": {"NetworkID": "ab" * 32}}}
    a, b, c = (ps.container_summary(r) for r in rows)
    every = [c, b, a]  # as ps lists them: newest first

    def names(filters):
        return [s["Names"][0] for s in ps.filter_summaries(every, filters)]

    assert names({"before": ["c"]}) == ["/b", "/a"]
    assert names({"since": ["a"]}) == ["/c", "/b"]
    assert names({"since": ["a"], "before": ["/c"]}) == ["/b"]
    assert names({"before": ["2" * 64]}) == ["/b", "/a"]
    with pytest.raises(DockwebError, match="^no such container 222$"):
        names({"before": ["222"]})  # a full ID or a name, not a prefix
    assert names({"volume": ["data"]}) == names({"volume": ["/srv"]}) == ["/b"]
    assert names({"volume": ["/v/data/_data"]}) == []  # a bind's source counts, not a volume's
    assert names({"network": ["host"]}) == names({"network": ["abab"]}) == ["/c"]
    assert names({"network": ["bridge"]}) == []
    assert names({"health": ["none"], "is-task": ["false"]}) == ["/c", "/b", "/a"]
    assert names({"health": ["healthy"]}) == names({"is-task": ["true"]}) == []
    assert names({"publish": ["80/tcp"]}) == names({"expose": ["8000-8080"]}) == []
    with pytest.raises(DockwebError, match="^Unrecognised filter value for health: x$"):
        names({"health": ["x"]})
    with pytest.raises(DockwebError, match=r"^Invalid filter 'is-task=\[x\]'$"):
        names({"is-task": ["x"]})


def test_it_formats_volume_ls_and_label_functions():
    vols = [{"Name": "data", "Driver": "local", "Mountpoint": "/x", "Labels": {"a": "1"}}]
    out = format_rows(volume_rows(vols), volumes.VOLUME_TABLE, volumes.VOLUME_HEADERS)
    assert out == "DRIVER    VOLUME NAME\nlocal     data\n"
    assert format_rows(volume_rows(vols), '{{.Label "a"}}', volumes.VOLUME_HEADERS) == "1\n"
    # the header of a label column is the key's last dotted part, "-" and "_" as spaces
    out = format_rows(
        volume_rows(vols), 'table {{.Name}}\t{{.Label "com.ex-am_ple.a-b"}}',
        volumes.VOLUME_HEADERS,
    )
    assert out.splitlines()[0] == "VOLUME NAME   a b"
    # a method is no field of the JSON object
    assert '"Label"' not in format_rows(volume_rows(vols), "json", volumes.VOLUME_HEADERS)
    with pytest.raises(FormatError, match=r"^template parsing error: .*<\.Label>: "
                       "wrong number of args for Label: want 1 got 0$"):
        format_rows(volume_rows(vols), "{{.Label}}", volumes.VOLUME_HEADERS,
                    type_name=volumes.VOLUME_TYPE)


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("{{.Names", "failed to parse template: template: :1: unclosed action"),
        (
            "{{.Label}}",
            'failed to execute template: template: :1:2: executing "" at <.Label>: '
            "wrong number of args for Label: want 1 got 0",
        ),
        (
            "table {{.Foo}}",
            'failed to execute template: template: :1:8: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.ContainerContext",
        ),
    ],
)
def test_ps_checks_its_format_before_listing_as_docker(fmt, message):
    # docker/cli runs the template on an empty container first: it fails with no containers
    with pytest.raises(FormatError) as exc:
        observe.check_ps_format(fmt)
    assert str(exc.value) == message
    observe.check_ps_format('table {{.ID}}\t{{.Label "a"}}\t{{.Size}}')


def test_it_aligns_top_as_docker():
    out = observe.top_table(["UID", "PID", "CMD"], [["root", "1", "sleep 100"]])
    assert out.splitlines()[0] == "UID                 PID                 CMD"


def test_it_parses_run_flags_like_docker():
    parser = build_parser()
    args = parser.parse_args(
        ["run", "-dit", "--rm", "--name", "x", "-e", "A=1", "-v", "data:/data", "-w", "/tmp",
         "-u", "1000", "--network", "host", "-h", "box", "busybox", "sh", "-c", "echo -d"]
    )
    assert (args.detach, args.interactive, args.tty, args.rm) == (True, True, True, True)
    assert args.image == "busybox" and args.cmd == ["sh", "-c", "echo -d"]
    assert (args.name, args.env, args.volume, args.workdir, args.user, args.network,
            args.hostname) == ("x", ["A=1"], ["data:/data"], "/tmp", "1000", "host", "box")
    assert parser.parse_args(["container", "ls", "-aq"]).quiet
    assert parser.parse_args(["container", "rm", "-fv", "a", "b"]).containers == ["a", "b"]
    assert parser.parse_args(["volume", "ls", "-q"]).quiet
    assert parser.parse_args(["logs", "-f", "--tail", "5", "-t", "x"]).tail == "5"


@pytest.mark.parametrize(
    "words",
    [
        ["run", "--rm", "busybox", "true"],
        ["--root", "/srv", "run", "-dit", "-e", "A=1", "-v", "/d", "busybox", "sh", "-c", "x"],
        ["--root=/srv/store", "run", "--name", "x", "--entrypoint", "", "busybox"],
    ],
)
def test_it_parses_a_run_command_line_alike_with_the_run_only_parser(words):
    assert vars(build_parser("run").parse_args(words)) == vars(build_parser().parse_args(words))


def test_it_exits_125_on_bad_flags():
    proc = subprocess.run([sys.executable, "-m", "dockweb.cli", "run", "--bogus", "busybox"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 125


def test_it_checks_volume_and_env_options_before_the_daemon():
    from containers.services import InvalidOption, parse_env, parse_mount

    assert parse_mount("data:/data:ro").readonly
    assert parse_mount("/srv:/srv").type == "bind"
    anon = parse_mount("/cache")
    assert (anon.type, anon.source, anon.target) == ("volume", "", "/cache")
    with pytest.raises(InvalidOption, match="mount path must be absolute"):
        parse_mount("data:rel")
    assert parse_env(["A=1", "HOMEISH", "B"], {"B": "2"}) == ["A=1", "B=2"]


# -- real containers -------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture
def dockweb(dockweb):
    """conftest's; no supervisor is left behind."""
    yield dockweb
    ids = dockweb("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        dockweb("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def busybox(registry):
    image = im.busybox_base()
    im.push_image(registry.host, "ctr/busybox", "1", image)
    return f"{registry.host}/ctr/busybox:1"


@needs_root
def test_it_runs_in_the_foreground_and_exits_with_the_code(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    proc = dockweb("run", "--rm", busybox, "echo", "hello", check=False)
    assert (proc.returncode, proc.stdout) == (0, "hello\n")
    assert dockweb("ps", "-aq").stdout == ""  # --rm took it
    proc = dockweb("run", "--rm", busybox, "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", "oops\n")


@needs_root
def test_it_exits_127_for_a_missing_command(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    proc = dockweb("run", "--rm", busybox, "no-such-command", check=False)
    assert proc.returncode == 127
    assert proc.stderr.startswith("dockweb: Error response from daemon: ")


@needs_root
def test_it_runs_detached_with_logs_ps_and_stop(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    cid = dockweb("run", "-d", "--name", "ticker", busybox, "sh", "-c",
                  "echo one; echo two >&2; sleep 100").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    for _ in range(50):
        if dockweb("logs", "ticker").stdout == "one\n":
            break
        time.sleep(0.1)
    logs = dockweb("logs", "ticker")
    assert (logs.stdout, logs.stderr) == ("one\n", "two\n")
    # --details: the entries' extra attributes (none) and a space before each line
    assert dockweb("logs", "--details", "ticker").stdout == " one\n"
    last = dockweb("logs", "--tail", "1", "ticker")  # stdout and stderr race: either line
    assert last.stdout + last.stderr in ("one\n", "two\n")
    lines = dockweb("ps").stdout.splitlines()
    assert re.match(r"^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$", lines[0])
    assert lines[1].startswith(cid[:12] + "   " + busybox)
    assert re.search(r"   Up (Less than a second|\d+ seconds?)   ", lines[1])
    assert lines[1].endswith("ticker")
    inspect = json.loads(dockweb("inspect", "ticker").stdout)[0]
    assert inspect["Id"] == cid and inspect["Name"] == "/ticker"
    assert inspect["State"]["Running"] is True and inspect["Path"] == "sh"
    # Config as dockerd keeps it: the image's env merged in, nothing attached with -d
    config = inspect["Config"]
    assert any(e.startswith("PATH=") for e in config["Env"])
    assert (config["AttachStdin"], config["AttachStdout"], config["AttachStderr"]) == (
        False, False, False
    )
    assert inspect["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert inspect["HostConfig"]["LogConfig"]["Type"] == "json-file"
    # the default bridge (tests/test_dockerapi_networks.py has its addresses)
    assert inspect["HostConfig"]["NetworkMode"] == "default"
    assert list(inspect["NetworkSettings"]["Networks"]) == ["bridge"]
    assert inspect["NetworkSettings"]["SandboxKey"].endswith("/netns/" + cid)
    data = inspect["GraphDriver"]["Data"]
    assert os.path.isdir(data["UpperDir"]) and os.path.ismount(data["MergedDir"])
    assert all(os.path.isdir(d) for d in data["LowerDir"].split(":"))
    assert open(inspect["HostnamePath"]).read() == cid[:12] + "\n"
    created = dockweb("create", busybox, "true").stdout.strip()
    config = json.loads(dockweb("inspect", created).stdout)[0]["Config"]
    assert (config["AttachStdout"], config["AttachStderr"]) == (True, True)
    dockweb("rm", created)
    assert dockweb("stop", "-t", "1", "ticker").stdout == "ticker\n"
    assert dockweb("ps", "-q").stdout == ""
    row = dockweb("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert re.fullmatch(r"ticker Exited \(137\) .* ago\n", row) or \
        re.fullmatch(r"ticker Exited \(143\) .* ago\n", row)
    assert dockweb("rm", "ticker").stdout == "ticker\n"
    assert dockweb("ps", "-aq").stdout == ""


@needs_root
def test_it_reports_missing_and_running_containers_like_docker(dockweb, busybox):
    assert dockweb("rm", "nope", check=False).stderr == "Error: No such container: nope\n"
    stop = dockweb("stop", "nope", check=False)
    assert (stop.returncode, stop.stderr) == (
        1, "Error response from daemon: No such container: nope\n"
    )
    kill = dockweb("kill", "nope", check=False)  # dockerd's kill wraps every failure
    assert (kill.returncode, kill.stderr) == (
        1, "Error response from daemon: Cannot kill container: nope: No such container: nope\n"
    )
    dockweb("pull", "-q", busybox)
    cid = dockweb("run", "-d", "--name", "taken", busybox, "sleep", "100").stdout.strip()
    # create prints the daemon's refusal as it is (status 1); run adds "docker: " (125)
    create = dockweb("create", "--name", "taken", busybox, check=False)
    conflict = (
        'Error response from daemon: Conflict. The container name "/taken" is already in use '
        f'by container "{cid}". You have to remove (or rename) that container to be able to '
        "reuse that name."
    )
    assert (create.returncode, create.stderr) == (1, conflict + "\n")
    run = dockweb("run", "--name", "taken", busybox, check=False)
    assert (run.returncode, run.stderr) == (
        125, f"dockweb: {conflict}\nSee 'dockweb run --help'.\n"
    )
    rm = dockweb("rm", cid[:12], check=False)
    assert rm.returncode == 1
    assert rm.stderr == (
        f"Error response from daemon: You cannot remove a running container {cid}. Stop the "
        "container before attempting removal or force remove\n"
    )
    assert dockweb("rm", "-f", cid[:12]).stdout == cid[:12] + "\n"


@needs_root
def test_it_creates_lists_and_removes_volumes(dockweb, busybox):
    assert dockweb("volume", "create", "data").stdout == "data\n"
    refused = dockweb("volume", "create", "-o", "type=tmpfs", "tmp", check=False)
    assert refused.returncode == 1 and "takes no options (given: type)" in refused.stderr
    assert dockweb("volume", "ls").stdout == "DRIVER    VOLUME NAME\nlocal     data\n"
    dockweb("pull", "-q", busybox)
    dockweb("run", "--rm", "-v", "data:/data", busybox, "sh", "-c", "echo kept > /data/f")
    out = dockweb("run", "--rm", "-v", "data:/data", busybox, "cat", "/data/f").stdout
    assert out == "kept\n"
    vol = json.loads(dockweb("volume", "inspect", "data").stdout)[0]
    assert vol["Name"] == "data" and vol["Driver"] == "local" and vol["Scope"] == "local"
    missing = dockweb("volume", "inspect", "nope", check=False)
    assert (missing.returncode, missing.stderr) == (1, "Error: No such volume: nope\n")
    prune = dockweb("volume", "prune", "-f").stdout
    assert prune.startswith("Deleted Volumes:\ndata\n\nTotal reclaimed space: ")
    assert dockweb("volume", "ls", "-q").stdout == ""


def test_it_parses_ps_output_as_moby():
    from dockweb.runtime.containers import parse_ps

    out = (
        "UID   PID  PPID CMD\n"
        "root    7     1 sleep 100 and more\n"
        "root    8     1 other\n"
        "root    -     - thread\n"
        "\n"
    )
    assert parse_ps(out, {7}) == (
        ["UID", "PID", "PPID", "CMD"], [["root", "7", "1", "sleep 100 and more"]]
    )
    with pytest.raises(DockwebError, match="^Couldn't find PID field in ps output$"):
        parse_ps("USER\nroot\n", {7})
    with pytest.raises(DockwebError, match=r"^Unexpected pid 'x': strconv.Atoi: parsing \"x\""):
        parse_ps("PID CMD\nx sh\n", {7})


@needs_root
def test_export_writes_its_file_whole_or_not_at_all_as_docker(dockweb, busybox, tmp_path):
    dockweb("pull", "-q", busybox)
    dockweb("create", "--name", "box", busybox, "true")
    out = tmp_path / "box.tar"
    assert dockweb("export", "-o", str(out), "box").stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # docker/cli 28's atomic writer
    with tarfile.open(out) as tar:
        assert "bin/busybox" in tar.getnames()
    refused = [
        (tmp_path, "cannot write to a directory"),
        ("/dev/null", "cannot write to a character device file"),
        (tmp_path / "no" / "x.tar",
         f"invalid output path: stat {tmp_path / 'no'}: no such file or directory"),
    ]
    for target, message in refused:
        proc = dockweb("export", "-o", str(target), "box", check=False)
        assert (proc.returncode, proc.stderr) == (1, f"failed to export container: {message}\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # never replaced by a file
    out.write_bytes(b"old")
    proc = dockweb("export", "-o", str(out), "nosuch", check=False)
    assert (proc.returncode, proc.stderr) == (
        1, "Error response from daemon: No such container: nosuch\n"
    )
    assert out.read_bytes() == b"old"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    with open("/dev/full", "wb") as full:
        proc = dockweb("export", "box", stdout=full, check=False)
    assert (proc.returncode, proc.stderr) == (1, "write /dev/stdout: no space left on device\n")


@needs_root
def test_exec_reports_a_command_that_cannot_start_on_stdout_with_126(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "box", busybox, "sleep", "100")
    proc = dockweb("exec", "box", "nosuch", check=False)
    assert (proc.returncode, proc.stdout) == (
        126,
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "nosuch": executable file not found in $PATH: unknown\n',
    )
    proc = dockweb("exec", "-u", "nosuch", "box", "id", check=False)
    assert (proc.returncode, proc.stdout) == (
        126, "unable to find user nosuch: no matching entries in passwd file\n"
    )
    dockweb("pause", "box")
    proc = dockweb("exec", "box", "true", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "Error response from daemon: Container box is paused, unpause the container "
        "before exec\n",
    )


@needs_root
def test_it_waits_renames_and_has_no_ports_as_docker(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    cid = dockweb("run", "-d", "--name", "first", busybox, "sh", "-c", "sleep 1; exit 7").stdout
    dockweb("create", "--name", "other", busybox, "true")
    # wait blocks until the container ends; a created one answers at once; failures last
    proc = dockweb("wait", "first", "nope", "other", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "7\n0\n", "Error response from daemon: No such container: nope\n"
    )
    assert dockweb("rename", "first", "/second").stdout == ""
    info = json.loads(dockweb("inspect", "second").stdout)[0]
    assert info["Name"] == "/second" and info["Config"]["Hostname"] == cid[:12]
    assert dockweb("ps", "-a", "--filter", "name=first", "-q").stdout == ""
    refused = [
        ("other", "Error when allocating new name: Conflict. The container name \"/other\" is "
                  f"already in use by container \"{_id(dockweb, 'other')}\". You have to remove "
                  "(or rename) that container to be able to reuse that name."),
        ("second", "Renaming a container with the same name as its current name"),
        ("bad name", "Error when allocating new name: Invalid container name (/bad name), only "
                     "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
    ]
    for new, message in refused:
        proc = dockweb("rename", "second", new, check=False)
        assert (proc.returncode, proc.stderr) == (
            1,
            f"Error response from daemon: {message}\n"
            "Error: failed to rename container named second\n",
        )
    proc = dockweb("rename", "second", " ", check=False)
    assert (proc.returncode, proc.stderr) == (1, "Error: Neither old nor new names may be empty\n")
    assert dockweb("port", "second").stdout == ""
    proc = dockweb("port", "second", "80", check=False)
    assert (proc.returncode, proc.stderr) == (
        1, "Error: No public port '80/tcp' published for second\n"
    )


def _id(dockweb, name: str) -> str:
    return json.loads(dockweb("inspect", name).stdout)[0]["Id"]


def test_it_splits_cp_arguments_as_the_docker_client():
    assert files._split_cp_arg("box:/etc/passwd") == ("box", "/etc/passwd")
    assert files._split_cp_arg("/abs/a:b") == ("", "/abs/a:b")
    assert files._split_cp_arg("./a:b") == ("", "./a:b")
    assert files._split_cp_arg("plain") == ("", "plain")
    assert files._split_cp_arg("-") == ("", "-")


@needs_root
def test_cp_copies_both_ways_and_pipes_tars(dockweb, busybox, tmp_path):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "box", busybox, "sleep", "100")
    (tmp_path / "note").write_text("hi\n")
    assert dockweb("cp", str(tmp_path / "note"), "box:/tmp/").stdout == ""
    assert dockweb("exec", "box", "cat", "/tmp/note").stdout == "hi\n"
    assert dockweb("cp", "box:/tmp/note", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back").read_text() == "hi\n"
    with open(tmp_path / "note.tar", "wb") as f:
        assert dockweb("cp", "box:/tmp/note", "-", stdout=f).returncode == 0
    with tarfile.open(tmp_path / "note.tar") as tar:
        assert tar.getnames() == ["note"]
    with open(tmp_path / "note.tar", "rb") as f:
        assert dockweb("cp", "-", "box:/", stdin=f).returncode == 0
    assert dockweb("exec", "box", "cat", "/note").stdout == "hi\n"
    for argv, message in [
        (["cp", "a", "b"], "must specify at least one container source\n"),
        (["cp", "box:/a", "box:/b"], "copying between containers is not supported\n"),
        (["cp", "box:/nope", str(tmp_path)],
         "Error response from daemon: Could not find the file /nope in container box\n"),
    ]:
        proc = dockweb(*argv, check=False)
        assert (proc.returncode, proc.stderr) == (1, message)


@needs_root
def test_run_takes_dockers_host_config_flags_and_inspect_shows_them(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("create", "--name", "tuned", "--read-only", "--cap-add", "net_admin",
            "--cap-drop", "MKNOD", "--tmpfs", "/run:size=1m", "--add-host", "db:10.0.0.5",
            "-m", "64m", "--cpus", "1.5", "--pids-limit", "50", "--stop-signal", "SIGUSR1",
            "--stop-timeout", "3", busybox, "true")
    info = json.loads(dockweb("inspect", "tuned").stdout)[0]
    host = info["HostConfig"]
    assert (host["ReadonlyRootfs"], host["CapAdd"], host["CapDrop"]) == (
        True, ["CAP_NET_ADMIN"], ["CAP_MKNOD"]
    )
    assert host["Tmpfs"] == {"/run": "size=1m"} and host["ExtraHosts"] == ["db:10.0.0.5"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
        64 << 20, 128 << 20, 1_500_000_000, 50
    )
    assert (info["Config"]["StopSignal"], info["Config"]["StopTimeout"]) == ("SIGUSR1", 3)
    assert_run_refuses(dockweb, busybox, [
        (["-m", "zz"], "invalid argument \"zz\" for \"-m, --memory\" flag: invalid size: 'zz'"),
        (["--cpus", "x"], 'invalid argument "x" for "--cpus" flag: failed to parse x as a '
                          "rational number"),
        (["--add-host", "db"], 'invalid argument "db" for "--add-host" flag: bad format for '
                               'add-host: "db"'),
        (["--shm-size", "zz"], "invalid argument \"zz\" for \"--shm-size\" flag: invalid size: "
                               "'zz'"),
    ])


def assert_run_refuses(dockweb, busybox, cases) -> None:
    """Each ``(flags, message)``: `run` with those flags fails before creating anything,
    with docker's message and help hint, status 125."""
    for argv, message in cases:
        proc = dockweb("run", *argv, busybox, "true", check=False)
        assert (proc.returncode, proc.stderr) == (125, f"{message}\nSee 'dockweb run --help'.\n")


@needs_root
def test_run_publishes_ports_that_ps_port_and_inspect_show(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "web", "-p", "127.0.0.1::7000", busybox, "sleep", "100")
    (line,) = dockweb("port", "web").stdout.splitlines()
    assert re.fullmatch(r"7000/tcp -> 127\.0\.0\.1:\d+", line)
    host_port = line.rsplit(":", 1)[1]
    assert dockweb("port", "web", "7000").stdout == f"127.0.0.1:{host_port}\n"
    assert dockweb("ps", "--format", "{{.Ports}}").stdout == (
        f"127.0.0.1:{host_port}->7000/tcp\n"
    )
    info = json.loads(dockweb("inspect", "web").stdout)[0]
    assert info["HostConfig"]["PortBindings"] == {"7000/tcp": [{"HostIp": "127.0.0.1",
                                                                "HostPort": ""}]}
    assert info["NetworkSettings"]["Ports"] == {"7000/tcp": [{"HostIp": "127.0.0.1",
                                                              "HostPort": host_port}]}
    proc = dockweb("run", "--rm", "-p", "x", busybox, "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        125, "dockweb: Invalid containerPort: x.\nSee 'dockweb run --help'.\n"
    )
    proc = dockweb("run", "--rm", "--network", "host", "-p", "80", busybox, "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        0, "WARNING: Published ports are discarded when using host network mode\n"
    )


@needs_root
def test_exec_detached_starts_the_command_and_returns(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "box", busybox, "sleep", "100")
    # the command waits for a file we make after exec -d has returned: it cannot be waited for
    proc = dockweb("exec", "-d", "box", "sh", "-c",
                   "while [ ! -e /go ]; do sleep 0.1; done; echo done > /done")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    dockweb("exec", "box", "touch", "/go")
    for _ in range(100):
        if dockweb("exec", "box", "cat", "/done", check=False).stdout == "done\n":
            break
        time.sleep(0.1)
    assert dockweb("exec", "box", "cat", "/done").stdout == "done\n"
    proc = dockweb("exec", "-d", "box", "nosuch", check=False)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "Error response from daemon: OCI runtime exec failed: exec failed: unable to start "
        'container process: exec: "nosuch": executable file not found in $PATH: unknown\n'
    )


def test_it_parses_mount_flags_as_the_docker_client():
    from dockweb.docker.run_options import InvalidFlag, parse_mount_flag

    spec, tmp = parse_mount_flag("type=bind,src=/srv/data,dst=/data,ro")
    assert (spec.type, spec.source, spec.target, spec.readonly, tmp) == (
        "bind", "/srv/data", "/data", True, None
    )
    assert not spec.create_source  # --mount never makes a missing bind source
    spec, _ = parse_mount_flag("source=cache,target=/cache")  # type defaults to volume
    assert (spec.type, spec.source, spec.readonly) == ("volume", "cache", False)
    assert parse_mount_flag("type=tmpfs,dst=/run,tmpfs-size=1m,tmpfs-mode=1770") == (
        None, ("/run", f"size={1 << 20},mode=1770")
    )
    for value, reason in [
        ("type=bind,src=/tmp", "target is required"),
        ("type=bind,bogus=1,dst=/x", "unexpected key 'bogus' in 'bogus=1'"),
        ("type=bind,ro=maybe,dst=/x", "invalid value for ro: maybe"),
        ("dst", "invalid field 'dst' must be a key=value pair"),
        ("type=tmpfs,dst=/t,tmpfs-size=zz", "invalid size: 'zz'"),
    ]:
        with pytest.raises(InvalidFlag) as e:
            parse_mount_flag(value)
        assert str(e.value) == f'invalid argument "{value}" for "--mount" flag: {reason}'


@needs_root
def test_run_mounts_binds_volumes_and_tmpfs_with_mount(dockweb, busybox, tmp_path):
    dockweb("pull", "-q", busybox)
    (tmp_path / "f").write_text("hi\n")
    proc = dockweb(
        "run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/m,ro",
        "--mount", "source=mvol,target=/v", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m",
        busybox, "sh", "-c",
        "cat /m/f; touch /m/g 2>/dev/null || echo ro; echo kept > /v/x; grep ' /t ' /proc/mounts",
    )
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["hi", "ro"] and "size=1024k" in lines[2]
    assert dockweb("volume", "ls", "-q").stdout == "mvol\n"  # a named volume, kept
    proc = dockweb("run", "--rm", "--mount", f"type=bind,src={tmp_path}/nope,dst=/m",
                   busybox, "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        125,
        'dockweb: Error response from daemon: invalid mount config for type "bind": bind '
        f"source path does not exist: {tmp_path}/nope.\nSee 'dockweb run --help'.\n",
    )


@needs_root
def test_run_sizes_shm_sets_ulimits_adds_groups_and_writes_a_cidfile(dockweb, busybox, tmp_path):
    dockweb("pull", "-q", busybox)
    cidfile = tmp_path / "cid"
    proc = dockweb(
        "run", "--cidfile", str(cidfile), "--name", "limited", "--shm-size", "128m",
        "--ulimit", "nofile=100:200", "--group-add", "50", busybox, "sh", "-c",
        "grep ' /dev/shm ' /proc/mounts; ulimit -n; ulimit -Hn; id -G",
    )
    lines = proc.stdout.splitlines()
    assert "size=131072k" in lines[0] and lines[1:] == ["100", "200", "0 50"]
    info = json.loads(dockweb("inspect", "limited").stdout)[0]
    assert cidfile.read_text() == info["Id"]
    host = info["HostConfig"]
    assert (host["ShmSize"], host["Ulimits"], host["GroupAdd"]) == (
        128 << 20, [{"Name": "nofile", "Hard": 200, "Soft": 100}], ["50"]
    )
    # the file is there: a second container is refused before it is created
    proc = dockweb("run", "--cidfile", str(cidfile), busybox, "true", check=False)
    assert (proc.returncode, proc.stderr) == (
        125,
        "dockweb: Container ID file found, make sure the other container isn't running or "
        f"delete {cidfile}.\nSee 'dockweb run --help'.\n",
    )
    proc = dockweb("run", "--ulimit", "nofile=200:100", busybox, "true", check=False)
    assert proc.stderr.startswith('invalid argument "nofile=200:100" for "--ulimit" flag: ')
    assert dockweb("ps", "-aq").stdout.split() == [info["Id"][:12]]


@needs_root
def test_run_restarts_by_policy_as_docker(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "flaky", "--restart", "on-failure:1", busybox,
            "sh", "-c", "exit 2")
    for _ in range(100):
        info = json.loads(dockweb("inspect", "flaky").stdout)[0]
        if info["RestartCount"] == 1 and info["State"]["Status"] == "exited":
            break
        time.sleep(0.1)
    assert (info["RestartCount"], info["State"]["ExitCode"]) == (1, 2)
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert_run_refuses(dockweb, busybox, [
        (["--rm", "--restart", "always"], "dockweb: Conflicting options: --restart and --rm."),
        (["--restart", "sometimes"],
         "dockweb: Error response from daemon: invalid restart policy 'sometimes'."),
    ])


@needs_root
def test_update_changes_limits_of_a_running_container_and_its_policy(dockweb, busybox):
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "tuned", busybox, "sleep", "100")
    assert dockweb("update", "-m", "64m", "--cpus", "0.5", "--pids-limit", "30",
                   "--restart", "unless-stopped", "tuned").stdout == "tuned\n"
    limits = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
              "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max")
    assert dockweb("exec", "tuned", "sh", "-c", limits).stdout.split() == [
        str(64 << 20), "50000", "30"
    ]
    host = json.loads(dockweb("inspect", "tuned").stdout)[0]["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"], host["RestartPolicy"]) == (
        64 << 20, 500_000_000, 30, {"Name": "unless-stopped", "MaximumRetryCount": 0}
    )
    dockweb("update", "--cpus", "0", "--pids-limit", "-1", "tuned")
    assert dockweb("exec", "tuned", "sh", "-c", limits).stdout.split()[1:] == ["-1", "max"]
    proc = dockweb("update", "tuned", check=False)
    assert (proc.returncode, proc.stderr) == (
        1, "You must provide one or more flags when using this command.\n"
    )
    proc = dockweb("update", "-m", "1m", "tuned", "nosuch", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "Error response from daemon: Minimum memory limit allowed is 6MB\n"
        "Error response from daemon: No such container: nosuch\n",
    )
