"""Health checks as dockerd 20.10 runs them: the HEALTHCHECK history text, the supervisor's
checks of real busybox containers (states, failing streak, the last five results, output
and timeout as dockerd records them, health_status events), ``run --health-*`` in the CLI
and through the Engine API (Debian's docker CLI 20.10), ``ps`` STATUS and ``-f health=``,
and the pages."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from dockweb.docker import ps
from dockweb.docker.containers import container_json
from dockweb.docker.run_options import ClientOption, InvalidFlag, parse_healthcheck
from dockweb.runtime import events
from dockweb.runtime.containers import ContainerSpec, Status, health
from dockweb.runtime.containers.spec import check_healthcheck
from dockweb.runtime.containers.state import status_text
from dockweb.runtime.errors import InvalidContainerSpec
from dockweb.runtime.units import (
    DurationError,
    go_duration,
    go_quote_rune,
    parse_go_duration,
)
from tests.support import images as im
from tests.support.containers import busybox_store

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
S = 10**9


@pytest.fixture
def role() -> str:
    return "viewer"  # the pages: reading is enough


def poll(predicate, timeout=30.0, step=0.1):
    """``predicate()``'s first true value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


# -- the history text and Go's formatting -------------------------------------------------


def test_the_history_text_is_gos_percent_q_of_the_health_config():
    text = health.config_text
    assert text({"Test": ["CMD-SHELL", "true"], "Interval": 30 * S}) == (
        """&{["CMD-SHELL" "true"] "30s" "0s" "0s" '\\x00'}"""
    )
    assert (
        text(
            {
                "Test": ["CMD", "curl", "-f", 'http://x/"a"'],
                "Interval": 90 * S,
                "Timeout": S // 2,
                "StartPeriod": 3600 * S,
                "Retries": 3,
            }
        )
        == """&{["CMD" "curl" "-f" "http://x/\\"a\\""] "1m30s" "500ms" "1h0m0s" '\\x03'}"""
    )
    assert text({"Test": ["NONE"]}) == """&{["NONE"] "0s" "0s" "0s" '\\x00'}"""
    assert text({"Test": ["CMD-SHELL", "x"], "Retries": 65}).endswith(" 'A'}")
    assert text({"Test": ["CMD-SHELL", "x"], "Retries": 10}).endswith(" '\\n'}")


def test_go_durations_and_runes():
    for given, ns, shown in [
        ("30s", 30 * S, "30s"), ("1m30s", 90 * S, "1m30s"), ("1.5s", 1500 * 10**6, "1.5s"),
        ("500ms", 5 * 10**8, "500ms"), ("0", 0, "0s"), ("1h", 3600 * S, "1h0m0s"),
        ("2us", 2000, "2µs"), ("1µs", 1000, "1µs"), ("-2s", -2 * S, "-2s"),
        (".5s", S // 2, "500ms"),
        ("1h2m3.004s", 3723004 * 10**6, "1h2m3.004s"), ("7ns", 7, "7ns"),
    ]:  # fmt: skip
        assert parse_go_duration(given) == ns, given
        assert go_duration(ns) == shown, ns
    for bad, words in [
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("", 'time: invalid duration ""'),
        ("s", 'time: invalid duration "s"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
    ]:
        with pytest.raises(DurationError) as err:
            parse_go_duration(bad)
        assert str(err.value) == words
    assert [go_quote_rune(n) for n in (0, 3, 39, 92, 127, 233, 0x110000)] == [
        "'\\x00'", "'\\x03'", "'\\''", "'\\\\'", "'\\x7f'", "'é'", "'\ufffd'",
    ]  # fmt: skip


# -- dockerd's handleProbeResult ------------------------------------------------------------


def _result(code, at, output=""):
    return {"Start": at, "End": at, "ExitCode": code, "Output": output}


def test_results_move_the_states_as_dockerd():
    started = "2026-01-01T00:00:00Z"
    hc = {"Test": ["CMD-SHELL", "x"], "Retries": 2}
    h = health.started(None)
    assert h == {"Status": "starting", "FailingStreak": 0, "Log": []}
    h = health.record(h, _result(1, "2026-01-01T00:00:01Z", "no"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)  # no start period
    h = health.record(h, _result(1, "2026-01-01T00:00:02Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.record(h, _result(0, "2026-01-01T00:00:03Z", "ok"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    h = health.record(h, _result(2, "2026-01-01T00:00:04Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)  # one failure: still healthy
    for second in range(5, 9):
        h = health.record(h, _result(1, f"2026-01-01T00:00:0{second}Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 5)
    assert len(h["Log"]) == 5 and h["Log"][0]["Start"] == "2026-01-01T00:00:04Z"  # oldest first
    # the default of 3 retries; failures within the start period do not count while starting
    hc = {"Test": ["CMD", "x"], "StartPeriod": 10 * S}
    h = health.started(h)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0 and len(h["Log"]) == 5
    for second in (1, 2, 3, 4):
        h = health.record(h, _result(1, f"2026-01-01T00:00:0{second}Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    for second in (11, 12):
        h = health.record(h, _result(1, f"2026-01-01T00:00:{second}Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 2)
    h = health.record(h, _result(1, "2026-01-01T00:00:13Z"), hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 3)
    assert health.closed(health.started(None))["Status"] == "unhealthy"
    assert health.closed(None) is None


def test_the_image_config_and_the_flags_merge_as_dockerd():
    image = {"Test": ["CMD-SHELL", "true"], "Interval": 30 * S, "Retries": 5}
    assert health.merge(None, image) == image
    assert health.merge({"Interval": S}, image) == {**image, "Interval": S}
    assert health.merge({"Test": ["NONE"]}, image) == {**image, "Test": ["NONE"]}
    assert health.merge({"Test": ["CMD", "x"]}, None) == {"Test": ["CMD", "x"]}
    assert health.probe({"Test": ["CMD-SHELL", "a b"]}) == ["/bin/sh", "-c", "a b"]
    assert health.probe({"Test": ["CMD-SHELL", "a"]}, ["/bin/ash", "-e", "-c"]) == [
        "/bin/ash", "-e", "-c", "a",
    ]  # fmt: skip
    assert health.probe({"Test": ["CMD", "a", "b"]}) == ["a", "b"]
    assert health.probe({"Test": ["NONE"]}) is None and health.probe(None) is None


def test_run_flags_make_the_healthcheck_as_docker_cli():
    assert parse_healthcheck() is None
    assert parse_healthcheck("true", "1s", "500ms", "2s", "3") == {
        "Test": ["CMD-SHELL", "true"], "Interval": S, "Timeout": S // 2,
        "StartPeriod": 2 * S, "Retries": 3,
    }  # fmt: skip
    assert parse_healthcheck(interval="5s") == {"Interval": 5 * S}  # the image's Test
    assert parse_healthcheck(no_healthcheck=True) == {"Test": ["NONE"]}
    for kw, kind, words in [
        ({"no_healthcheck": True, "cmd": "x"}, ClientOption,
         "--no-healthcheck conflicts with --health-* options"),
        ({"interval": "-1s"}, ClientOption, "--health-interval cannot be negative"),
        ({"timeout": "-1s"}, ClientOption, "--health-timeout cannot be negative"),
        ({"start_period": "-1s"}, ClientOption, "--health-start-period cannot be negative"),
        ({"retries": "-1"}, ClientOption, "--health-retries cannot be negative"),
        ({"interval": "1"}, InvalidFlag,
         'invalid argument "1" for "--health-interval" flag: time: missing unit in duration "1"'),
        ({"retries": "x"}, InvalidFlag, 'invalid argument "x" for "--health-retries" flag: '
         'strconv.ParseInt: parsing "x": invalid syntax'),
    ]:  # fmt: skip
        with pytest.raises(kind) as err:
            parse_healthcheck(**kw)
        assert str(err.value) == words
    check_healthcheck({"Test": ["CMD", "x"], "Interval": 10**6, "Retries": 0})
    for hc, words in [
        ({"Interval": 999_999}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Timeout": 1}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"StartPeriod": 5}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ]:
        with pytest.raises(InvalidContainerSpec) as err:
            check_healthcheck(hc)
        assert str(err.value) == words


def _info(name, status="running", health_=None):
    now = datetime.now(UTC)
    state = {
        "Status": status, "Running": status == "running", "ExitCode": 0,
        "StartedAt": (now - timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
        "FinishedAt": "0001-01-01T00:00:00Z",
    }  # fmt: skip
    if health_ is not None:
        state["Health"] = {"Status": health_, "FailingStreak": 0, "Log": []}
    return {
        "Id": name * 64, "Name": "/" + name, "Image": "sha256:" + "a" * 64, "Path": "sh",
        "Args": [], "Created": now.isoformat().replace("+00:00", "Z"), "State": state,
        "Config": {"Image": "busybox", "Labels": {}}, "HostConfig": {"NetworkMode": "none"},
        "Mounts": [],
    }  # fmt: skip


def test_ps_shows_and_filters_health_as_dockerd():
    rows = [
        ps.container_summary(_info(n, health_=h))
        for n, h in [("a", "starting"), ("b", "healthy"), ("c", "unhealthy"), ("d", None)]
    ]
    assert [r["Status"] for r in rows] == [
        "Up 3 seconds (health: starting)", "Up 3 seconds (healthy)",
        "Up 3 seconds (unhealthy)", "Up 3 seconds",
    ]  # fmt: skip

    def names(value):
        return [r["Names"][0] for r in ps.filter_summaries(rows, {"health": value})]

    assert names(["starting"]) == ["/a"]
    assert names(["healthy"]) == ["/b"]
    assert names(["unhealthy"]) == ["/c"]
    assert names(["none"]) == ["/d"]
    assert names(["healthy", "none"]) == ["/b", "/d"]
    # not running: no health in the STATUS (a stopped check reads unhealthy, as dockerd)
    exited = _info("e", "exited", "unhealthy")
    exited["State"]["FinishedAt"] = exited["State"]["StartedAt"]
    assert ps.container_summary(exited)["Status"] == "Exited (0) 3 seconds ago"
    paused = status_text(Status.PAUSED, started_at=datetime.now(UTC), finished_at=None,
                         health="healthy")  # fmt: skip
    assert paused == "Up Less than a second (Paused)"


# -- real containers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(registry, tmp_path_factory):
    return busybox_store(registry, tmp_path_factory, "health")[0]


@pytest.fixture(scope="module")
def image(registry, store):
    return f"{registry.host}/health/busybox:1"


def _health(manager, cid):
    return manager.read_state(cid).health


def _status_is(manager, cid, want):
    return lambda: (h := _health(manager, cid)) and h["Status"] == want and h


@needs_root
def test_a_check_turns_unhealthy_and_back_with_dockers_states_and_outputs(manager, image):
    since = time.time_ns()
    missing = "cat: can't open '/tmp/ok': No such file or directory\n"
    c = manager.create(
        ContainerSpec(
            image=image, name="checked", cmd=["sleep", "300"],
            healthcheck={"Test": ["CMD-SHELL", "cat /tmp/ok"], "Interval": S, "Retries": 2,
                         "StartPeriod": 3600 * S},
        )
    )  # fmt: skip
    manager.start(c.id)
    # a start: starting at once; failures within the start period do not count
    h = _health(manager, c.id)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    info = container_json(manager.get(c.id), manager, manager.root)
    assert ps.container_summary(info)["Status"].endswith(" (health: starting)")
    assert info["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "cat /tmp/ok"], "Interval": S, "StartPeriod": 3600 * S,
        "Retries": 2,
    }  # fmt: skip
    h = poll(lambda: len(_health(manager, c.id)["Log"]) >= 2 and _health(manager, c.id))
    assert h and (h["Status"], h["FailingStreak"]) == ("starting", 0)
    assert [(r["ExitCode"], r["Output"]) for r in h["Log"][:2]] == [(1, missing)] * 2

    manager.exec(c.id, ["sh", "-c", "echo up > /tmp/ok"])
    h = poll(_status_is(manager, c.id, "healthy"))
    assert h and h["FailingStreak"] == 0
    first = h["Log"][-1]
    assert (first["ExitCode"], first["Output"]) == (0, "up\n")
    assert first["Start"] <= first["End"]
    info = container_json(manager.get(c.id), manager, manager.root)
    assert ps.container_summary(info)["Status"].endswith(" (healthy)")
    assert info["State"]["Health"]["Status"] == "healthy"

    manager.exec(c.id, ["rm", "/tmp/ok"])
    h = poll(_status_is(manager, c.id, "unhealthy"))
    assert h and h["FailingStreak"] >= 2  # Retries failures in a row (2 when it turned)
    streak = h["Log"][-h["FailingStreak"] :]
    assert [(r["ExitCode"], r["Output"]) for r in streak] == [(1, missing)] * len(streak)
    if h["FailingStreak"] < len(h["Log"]):
        assert h["Log"][-h["FailingStreak"] - 1]["ExitCode"] == 0  # the success before
    assert poll(lambda: _health(manager, c.id)["FailingStreak"] >= 3)  # it goes on counting
    assert _health(manager, c.id)["Status"] == "unhealthy"

    manager.exec(c.id, ["sh", "-c", "echo back > /tmp/ok"])
    h = poll(_status_is(manager, c.id, "healthy"))
    assert h and h["FailingStreak"] == 0 and h["Log"][-1]["Output"] == "back\n"
    assert len(h["Log"]) == 5  # the last five, oldest first
    starts = [r["Start"] for r in h["Log"]]
    assert starts == sorted(starts)

    manager.stop(c.id, timeout=1)
    h = _health(manager, c.id)
    assert h["Status"] == "unhealthy"  # the monitor stopped: 20.10 says unhealthy
    info = container_json(manager.get(c.id), manager, manager.root)
    assert ps.container_summary(info)["Status"].startswith("Exited (")

    actions = [
        e["Action"]
        for e in events.read(manager.root, since_ns=since)
        if e.get("Type") == "container" and e["Actor"]["ID"] == c.id
    ]
    health_events = [a for a in actions if a.startswith("health_status")]
    assert health_events == [
        "health_status: healthy", "health_status: unhealthy", "health_status: healthy",
    ]  # fmt: skip
    # each check is an exec, with dockerd's events of one
    assert "exec_create: /bin/sh -c cat /tmp/ok" in actions
    assert "exec_start: /bin/sh -c cat /tmp/ok" in actions
    assert actions.count("exec_die") >= 5
    # a new start: starting again, the log kept
    manager.start(c.id)
    h = _health(manager, c.id)
    assert (h["Status"], h["FailingStreak"], len(h["Log"])) == ("starting", 0, 5)
    manager.kill(c.id)
    manager.wait(c.id)
    assert _health(manager, c.id)["Status"] == "unhealthy"


@needs_root
def test_a_check_past_its_timeout_and_a_long_output_as_dockerd(manager, image):
    slow = manager.create(
        ContainerSpec(
            image=image, cmd=["sleep", "300"],
            healthcheck={"Test": ["CMD", "sleep", "5"], "Interval": S, "Timeout": S // 2,
                         "Retries": 1},
        )
    )  # fmt: skip
    loud = manager.create(
        ContainerSpec(
            image=image, cmd=["sleep", "300"],
            healthcheck={"Test": ["CMD-SHELL", "yes | head -c 5000"], "Interval": S},
        )
    )  # fmt: skip
    manager.start(slow.id)
    manager.start(loud.id)
    h = poll(_status_is(manager, slow.id, "unhealthy"))
    assert h and h["FailingStreak"] >= 1  # Retries 1: the first failure turned it
    assert (h["Log"][0]["ExitCode"], h["Log"][0]["Output"]) == (
        -1, "Health check exceeded timeout (500ms)",
    )  # fmt: skip
    h = poll(_status_is(manager, loud.id, "healthy"))
    assert h and h["Log"][0]["Output"] == "y\n" * 2048 + "..."  # 4096 bytes, then "..."
    # paused: the checks stop (unhealthy); unpaused, the next check says healthy again
    manager.pause(loud.id)
    assert _health(manager, loud.id)["Status"] == "unhealthy"
    manager.unpause(loud.id)
    assert poll(_status_is(manager, loud.id, "healthy"))
    for c in (slow, loud):
        manager.remove(c.id, force=True)


def _probes(argv: list[str]) -> int:
    """How many processes on the machine run exactly ``argv``."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        count += words == [w.encode() for w in argv]
    return count


@needs_root
def test_checks_past_their_timeout_do_not_pile_up(manager, image):
    """dockerd waits for a timed-out probe to end (SIGTERM, SIGKILL after the grace) before
    the next interval: a probe ignoring SIGTERM must not get company every interval."""
    c = manager.create(
        ContainerSpec(
            image=image, cmd=["sleep", "300"],
            healthcheck={"Test": ["CMD-SHELL", "trap '' TERM; exec sleep 37"],
                         "Interval": S // 5, "Timeout": S // 5, "Retries": 1},
        )
    )  # fmt: skip
    manager.start(c.id)
    try:
        assert poll(lambda: _probes(["sleep", "37"]), timeout=20), "the check never ran"
        seen = set()
        deadline = time.monotonic() + 3  # 15 intervals
        while time.monotonic() < deadline:
            seen.add(_probes(["sleep", "37"]))
            time.sleep(0.05)
        assert max(seen) == 1, f"{max(seen)} timed-out checks ran at once"
        h = _health(manager, c.id)
        assert h["Log"][0]["Output"] == "Health check exceeded timeout (200ms)"
    finally:
        manager.remove(c.id, force=True)


@needs_root
def test_a_lost_supervisor_leaves_no_live_health(manager, image):
    c = manager.create(
        ContainerSpec(image=image, cmd=["sleep", "300"],
                      healthcheck={"Test": ["CMD", "true"], "Interval": S})
    )  # fmt: skip
    manager.start(c.id)
    assert poll(_status_is(manager, c.id, "healthy"))
    # a signal that does not end it (PID 1 ignores USR1): the checks go on, as dockerd's
    manager.kill(c.id, "USR1")
    last = _health(manager, c.id)["Log"][-1]["Start"]
    assert poll(lambda: _health(manager, c.id)["Log"][-1]["Start"] > last)
    assert _health(manager, c.id)["Status"] == "healthy"
    with open(os.path.join(manager.cdir(c.id), "shim.pid")) as f:
        os.kill(int(f.read()), 9)
    assert poll(lambda: not manager.shim_alive(c.id), timeout=10)
    got = manager.get(c.id)  # reconciled: exited, and nobody checks it any more
    assert got.status is Status.EXITED and got.state.health["Status"] == "unhealthy"
    manager.remove(c.id, force=True)


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busybox(registry):
    im.push_image(registry.host, "healthcli/busybox", "1", im.busybox_base())
    return f"{registry.host}/healthcli/busybox:1"


@pytest.fixture
def cli(dockweb):
    """``dockweb``, and every container left removed at the end (a failed test too)."""
    yield dockweb
    ids = dockweb("ps", "-aq", check=False).stdout.split()
    if ids:
        dockweb("rm", "-f", *ids, check=False)


def _ps(dockweb, *args):
    return dockweb("ps", "--format", "{{.Names}} {{.Status}}", *args).stdout


@needs_root
def test_cli_run_health_flags_ps_status_filters_and_inspect(cli, busybox):
    dockweb = cli
    dockweb("pull", "-q", busybox)
    dockweb("run", "-d", "--name", "plain", busybox, "sleep", "100")
    # failures within the start period do not count: starting until the first success
    dockweb("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok", "--health-interval",
            "1s", "--health-retries", "2", "--health-timeout", "5s", "--health-start-period",
            "1h", busybox, "sleep", "100")  # fmt: skip

    def starting_health():
        got = json.loads(dockweb("inspect", "-f", "{{json .State.Health}}", "hc").stdout)
        return len(got["Log"]) >= 2 and got

    early = poll(starting_health)
    assert early and (early["Status"], early["FailingStreak"]) == ("starting", 0)
    assert early["Log"][0]["ExitCode"] == 1
    assert early["Log"][0]["Output"] == "cat: can't open '/tmp/ok': No such file or directory\n"
    assert re.search(r"^hc Up .* \(health: starting\)$", _ps(dockweb), re.M)
    assert _ps(dockweb, "-f", "health=starting").startswith("hc Up")
    dockweb("exec", "hc", "sh", "-c", "echo up > /tmp/ok")
    assert poll(lambda: _ps(dockweb, "-f", "health=healthy").startswith("hc Up"))
    assert re.search(r"^hc Up .* \(healthy\)$", _ps(dockweb), re.M)
    assert _ps(dockweb, "-f", "health=none").startswith("plain Up")
    assert re.search(r"^plain Up [^(]*$", _ps(dockweb), re.M)
    config = json.loads(dockweb("inspect", "-f", "{{json .Config.Healthcheck}}", "hc").stdout)
    assert config == {"Test": ["CMD-SHELL", "cat /tmp/ok"], "Interval": S, "Timeout": 5 * S,
                      "StartPeriod": 3600 * S, "Retries": 2}  # fmt: skip
    state = json.loads(dockweb("inspect", "-f", "{{json .State.Health}}", "hc").stdout)
    assert (state["Status"], state["FailingStreak"]) == ("healthy", 0)
    assert state["Log"][-1]["ExitCode"] == 0
    assert state["Log"][-1]["Output"] == "up\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", state["Log"][-1]["Start"])
    assert dockweb("inspect", "-f", "{{json .State.Health}}", "plain").stdout == "null\n"

    dockweb("exec", "hc", "rm", "/tmp/ok")
    assert poll(lambda: _ps(dockweb, "-f", "health=unhealthy").startswith("hc Up"))
    assert re.search(r"^hc Up .* \(unhealthy\)$", _ps(dockweb), re.M)
    streak = dockweb("inspect", "-f", "{{.State.Health.FailingStreak}}", "hc").stdout
    assert int(streak) >= 2
    dockweb("rm", "-f", "hc", "plain")

    for args, words in [
        (["--no-healthcheck", "--health-cmd", "x"],
         "--no-healthcheck conflicts with --health-* options"),
        (["--health-interval", "1"], 'invalid argument "1" for "--health-interval" flag: '
         'time: missing unit in duration "1"'),
        (["--health-interval", "10us"], "Interval in Healthcheck cannot be less than 1ms"),
    ]:  # fmt: skip
        proc = dockweb("run", "-d", *args, busybox, "true", check=False)
        assert proc.returncode == 125 and words in proc.stderr, proc.stderr
    assert dockweb("ps", "-aq").stdout == ""


@needs_root
def test_an_images_healthcheck_its_history_text_and_no_healthcheck(cli, busybox, tmp_path):
    dockweb = cli
    dockweb("pull", "-q", busybox)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f'FROM {busybox}\nHEALTHCHECK --interval=1s --retries=3 CMD ["test", "-e", "/etc/passwd"]\n'
    )
    dockweb("build", "-q", "-t", "checked:1", str(context))
    history = dockweb("history", "--no-trunc", "--format", "{{.CreatedBy}}", "checked:1")
    assert history.stdout.splitlines()[0] == (
        """/bin/sh -c #(nop)  HEALTHCHECK &{["CMD" "test" "-e" "/etc/passwd"] "1s" "0s" """
        """"0s" '\\x03'}"""
    )
    dockweb("run", "-d", "--name", "from-image", "checked:1", "sleep", "100")
    dockweb("run", "-d", "--name", "disabled", "--no-healthcheck", "checked:1", "sleep", "100")
    dockweb("run", "-d", "--name", "faster", "--health-timeout", "2s", "checked:1", "sleep",
            "100")  # fmt: skip
    assert poll(lambda: _ps(dockweb, "-f", "health=healthy").count("Up") == 2)
    assert _ps(dockweb, "-f", "health=none").startswith("disabled Up")
    # dockerd fills what --no-healthcheck leaves unset from the image's, as any --health-*
    assert json.loads(
        dockweb("inspect", "-f", "{{json .Config.Healthcheck}}", "disabled").stdout
    ) == {"Test": ["NONE"], "Interval": S, "Retries": 3}
    assert dockweb("inspect", "-f", "{{json .State.Health}}", "disabled").stdout == "null\n"
    assert json.loads(
        dockweb("inspect", "-f", "{{json .Config.Healthcheck}}", "faster").stdout
    ) == {"Test": ["CMD", "test", "-e", "/etc/passwd"], "Interval": S, "Timeout": 2 * S,
          "Retries": 3}  # fmt: skip
    dockweb("rm", "-f", "from-image", "disabled", "faster")


# -- the Engine API, with Debian's docker CLI ---------------------------------------------


@needs_root
def test_docker_cli_runs_health_checks_through_the_engine_api(engine_api, registry):
    image = engine_api.pulled_busybox(registry, "health-api")
    docker = engine_api.docker
    since = str(int(time.time()) - 1)
    docker("run", "-d", "--name", "api-hc", "--health-cmd", "echo fine", "--health-interval",
           "1s", image, "sleep", "100", check=True)  # fmt: skip
    config = docker("inspect", "-f", "{{json .Config.Healthcheck}}", "api-hc", check=True)
    assert json.loads(config.stdout) == {"Test": ["CMD-SHELL", "echo fine"], "Interval": S}
    assert poll(lambda: docker("ps", "-q", "-f", "health=healthy").stdout.strip())
    status = docker("ps", "--format", "{{.Status}}", "-f", "name=api-hc").stdout
    assert re.fullmatch(r"Up .* \(healthy\)\n", status)
    health_ = json.loads(docker("inspect", "-f", "{{json .State.Health}}", "api-hc").stdout)
    assert health_["Log"][0]["Output"] == "fine\n" and health_["FailingStreak"] == 0
    seen = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                  "--filter", "event=health_status", "--format", "{{.Status}}")  # fmt: skip
    assert seen.stdout == "health_status: healthy\n"
    # the dashboard's mirror has it (the supervisor runs the exit hook after each check)
    db = engine_api.base / "data" / "db.sqlite3"

    def mirrored():
        with sqlite3.connect(db) as conn:
            row = conn.execute(
                "SELECT inspect FROM containers_container WHERE name = 'api-hc'"
            ).fetchone()
        return row and (json.loads(row[0])["State"].get("Health") or {}).get("Status")

    assert poll(mirrored) == "healthy"
    bad = docker("create", "--health-interval", "10us", image, "true")
    assert (bad.returncode, bad.stderr) == (
        1,
        "Error response from daemon: Interval in Healthcheck cannot be less than 1ms\n",
    )
    docker("rm", "-f", "api-hc", check=True)


# -- the pages ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_pages_show_health_and_the_last_outputs(client):
    from django.utils import timezone

    from containers.models import Container

    cid = "4e" * 32
    now = timezone.now()
    log = [
        {"Start": "2026-01-01T00:00:01.5Z", "End": "2026-01-01T00:00:01.6Z", "ExitCode": 0,
         "Output": "all <good>\n"},
        {"Start": "2026-01-01T00:00:02.5Z", "End": "2026-01-01T00:00:02.6Z", "ExitCode": 1,
         "Output": "refused\n"},
    ]  # fmt: skip
    Container.objects.create(
        container_id=cid, name="web", image="busybox", image_id="sha256:" + "ab" * 32,
        path="sh", args=[], status="running", created=now - timedelta(minutes=3),
        started_at=now - timedelta(seconds=5),
        inspect={"Id": cid, "Name": "/web", "State": {
            "Running": True, "Health": {"Status": "unhealthy", "FailingStreak": 4, "Log": log},
        }},
    )  # fmt: skip
    body = client.get("/containers/").content.decode()
    assert "Up 5 seconds (unhealthy)" in body and 'data-health="unhealthy"' in body
    body = client.get(f"/containers/{cid}/").content.decode()
    assert "Up 5 seconds (unhealthy)" in body
    assert 'id="health"' in body and "failing streak 4" in body
    assert body.index("refused") < body.index("all &lt;good&gt;")  # newest first, escaped
    row = Container.objects.get(container_id=cid)
    row.inspect["State"] = {"Running": False}
    row.status = "exited"
    row.finished_at = now
    row.save()
    body = client.get("/containers/").content.decode()
    assert "data-health" not in body
