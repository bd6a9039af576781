"""Health checks as dockerd 20.10 runs them (daemon/health.go): the HealthConfig (Docker's
JSON shape, durations in nanoseconds), its merge with the image's, the classic builder's
history text, and the monitor the supervisor runs while the container does
(``dockweb.runtime.shim``); dockerd's checks of a HealthConfig are in ``spec``.

A container's health is ``State.health``: ``{"Status", "FailingStreak", "Log"}`` as
``docker inspect`` shows ``.State.Health`` (the last five results, oldest first, each
``{"Start", "End", "ExitCode", "Output"}``), None when it has no check. As dockerd:

- a start (and a restart by policy) sets ``starting`` and a failing streak of 0; the log
  stays;
- every ``Interval`` (30 s) the check runs as an exec would (``exec_create``/``exec_start``/
  ``exec_die`` events), its output (stdout and stderr together) kept up to 4096 bytes, then
  ``...``; past ``Timeout`` (30 s) it is sent SIGTERM (SIGKILL 10 s later) and recorded with
  exit code -1 and ``Health check exceeded timeout (1s)``;
- exit code 0: ``healthy`` and a streak of 0; anything else adds one to the streak, except
  while ``starting`` within ``StartPeriod`` of the start; a streak of ``Retries`` (3) makes
  it ``unhealthy``; each change of status is a ``health_status: <status>`` event;
- when the monitor stops (a stop begins, a pause, the process's end, or its supervisor
  found gone) the status becomes ``unhealthy``, without an event: 20.10's
  CloseMonitorChannel. So no ``healthy`` is ever shown for a check nobody runs.

The health lives in ``state.json`` (written without fsync at each result, under the state
lock): it survives a restart of the worker or the web side, and a supervisor's.
"""

from __future__ import annotations

import contextlib
import os
import signal as signals
import threading
import time
from collections.abc import Callable

from dockweb.runtime import events
from dockweb.runtime.containers.state import Status, now_rfc3339nano
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.units import go_duration, go_quote, go_quote_rune, parse_go_time

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATES = (STARTING, HEALTHY, UNHEALTHY, NONE)  # what ps -f health= accepts

MAX_OUTPUT = 4096  # bytes of a check's output kept (then "...")
MAX_LOG = 5  # results kept
DEFAULT_INTERVAL = 30 * 10**9
DEFAULT_TIMEOUT = 30 * 10**9
DEFAULT_START_PERIOD = 0
DEFAULT_RETRIES = 3
# notify (the mirror: a process of 60 to 600 ms of CPU) runs after a change of status, and
# after other results at most this often (s): checks every second cost no more than that
MIRROR_EVERY = 10.0
TERM_GRACE = 10.0  # seconds between a timed-out check's SIGTERM and its SIGKILL
FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")  # Go's field order


def normalize(hc: dict | None) -> dict | None:
    """A HealthConfig as Go keeps it: only the fields it has, zero values left out."""
    if hc is None:
        return None
    out: dict = {}
    for key in FIELDS:
        value = hc.get(key)
        if value:
            out[key] = list(value) if key == "Test" else int(value)
    return out


def merge(user: dict | None, image: dict | None) -> dict | None:
    """The container's HealthConfig: the one given, its unset fields from the image's
    (dockerd's merge of a container's config with its image's)."""
    if not image:
        return normalize(user)
    if user is None:
        return normalize(image)
    out = dict(normalize(user) or {})
    for key in FIELDS:
        if not out.get(key) and image.get(key):
            out[key] = image[key]
    return normalize(out)


def probe(hc: dict | None, shell: list[str] | None = None) -> list[str] | None:
    """The command a check runs (``CMD``: as given; ``CMD-SHELL``: through the image's
    SHELL, else ``/bin/sh -c``), or None: no check (none, ``NONE``, or an unknown type)."""
    test = list((hc or {}).get("Test") or [])
    if not test:
        return None
    if test[0] == "CMD" and len(test) > 1:
        return test[1:]
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return None


def config_text(hc: dict) -> str:
    """Go's ``%q`` of a ``*HealthConfig``, as the classic builder writes it in the
    history: ``&{["CMD-SHELL" "true"] "30s" "0s" "0s" '\\x00'}``."""
    test = "[" + " ".join(go_quote(t) for t in hc.get("Test") or []) + "]"
    durations = [
        go_quote(go_duration(int(hc.get(k) or 0))) for k in ("Interval", "Timeout", "StartPeriod")
    ]
    return "&{" + " ".join([test, *durations, go_quote_rune(int(hc.get("Retries") or 0))]) + "}"


# -- the state ------------------------------------------------------------------------------


def started(health: dict | None) -> dict:
    """The health at a start: ``starting``, no failing streak, the log kept."""
    return {"Status": STARTING, "FailingStreak": 0, "Log": list((health or {}).get("Log") or [])}


def closed(health: dict | None, *, stopping: bool = False) -> dict | None:
    """The health once its monitor stopped: ``unhealthy`` (20.10's CloseMonitorChannel).
    ``stopping``: a stop began; the supervisor's monitor then runs no more checks (a
    pause only suspends them). The mark is ours: inspect never shows it."""
    if health is None:
        return None
    return {**health, "Status": UNHEALTHY, **({"Stopping": True} if stopping else {})}


def status_of(health: dict | None) -> str:
    """``ps -f health=``'s value: the status, ``none`` without a check."""
    if health is None:
        return NONE
    return health.get("Status") or UNHEALTHY  # dockerd: a monitor not yet set up


def record(health: dict, result: dict, hc: dict, started_at: str) -> dict:
    """dockerd's handleProbeResult: the health after ``result``."""
    retries = int(hc.get("Retries") or 0) or DEFAULT_RETRIES
    log = [*list(health.get("Log") or [])[-(MAX_LOG - 1) :], result]
    status = health.get("Status") or UNHEALTHY
    streak = int(health.get("FailingStreak") or 0)
    if result["ExitCode"] == 0:
        streak, status = 0, HEALTHY
    else:
        count = True
        if status == STARTING:
            period = int(hc.get("StartPeriod") or 0) or DEFAULT_START_PERIOD
            start, begun = parse_go_time(result["Start"]), parse_go_time(started_at)
            if start and begun and (start - begun).total_seconds() * 1e9 < period:
                count = False  # within the start period: the streak waits
        if count:
            streak += 1
            if streak >= retries:
                status = UNHEALTHY
    return {"Status": status, "FailingStreak": streak, "Log": log}


class _Output:
    """dockerd's limitedBuffer: the first 4096 bytes, ``...`` after when more came."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.truncated = False
        self.lock = threading.Lock()

    def pump(self, f) -> None:
        fd = f.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            with self.lock:
                keep = max(0, min(MAX_OUTPUT - len(self.buf), len(data)))
                self.buf += data[:keep]
                if keep < len(data):
                    self.truncated = True

    def text(self) -> str:
        with self.lock:
            out = bytes(self.buf).decode("utf-8", "replace")  # as Go's json: invalid UTF-8
            return out + "..." if self.truncated else out


def run_check(
    mgr, cid: str, cmd: list[str], timeout_ns: int
) -> tuple[dict, threading.Thread | None]:
    """Run the check once as an exec (the container's user, working directory and
    environment); the result as dockerd records it (without Start), and for a check past
    its timeout the thread that ends it (SIGKILL after the grace), which the caller waits
    for before the next check, as dockerd does: dying probes must not pile up."""
    try:
        handle = mgr.exec_start(cid, cmd, output=True)
    except (DockwebError, OSError) as e:  # dockerd: the error's text, exit code -1
        return {"End": now_rfc3339nano(), "ExitCode": -1, "Output": str(e)}, None
    out = _Output()
    readers = [
        threading.Thread(target=out.pump, args=(f,), daemon=True)
        for f in (handle.stdout, handle.stderr)
        if f is not None
    ]
    for t in readers:
        t.start()
    try:
        code = handle.wait(timeout_ns / 1e9)
    except TimeoutError:
        with contextlib.suppress(OSError):
            handle.kill(signals.SIGTERM)
        late = threading.Thread(target=_reap_late, args=(handle,), daemon=True)
        late.start()
        result = {
            "End": now_rfc3339nano(),
            "ExitCode": -1,
            "Output": f"Health check exceeded timeout ({go_duration(timeout_ns)})",
        }
        return result, late
    for t in readers:
        t.join(1)
    end = now_rfc3339nano()
    handle.close()
    return {"End": end, "ExitCode": code, "Output": out.text()}, None


def _reap_late(handle) -> None:
    """A check past its timeout: SIGKILL when SIGTERM did not end it, then its exit (for
    its exec_die event)."""
    try:
        handle.wait(TERM_GRACE)
    except TimeoutError:
        handle.kill(signals.SIGKILL)
        with contextlib.suppress(TimeoutError):
            handle.wait(TERM_GRACE)
    handle.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return pid > 0


class Monitor:
    """The check of one run of a container, in a thread of its supervisor. ``notify``
    (the supervisor's mirror hook) is called after a result changed the status, and after
    others at most every ``MIRROR_EVERY`` seconds."""

    def __init__(
        self,
        mgr,
        c,
        hc: dict,
        cmd: list[str],
        started_at: str,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.mgr, self.c, self.hc, self.cmd = mgr, c, hc, cmd
        self.started_at = started_at
        self.notify = notify
        self.mirrored = -MIRROR_EVERY  # when notify last ran (monotonic)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="health", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        interval = (int(self.hc.get("Interval") or 0) or DEFAULT_INTERVAL) / 1e9
        timeout = int(self.hc.get("Timeout") or 0) or DEFAULT_TIMEOUT
        while not self.stop_event.wait(interval):
            try:
                st = self.mgr.read_state(self.c.id)
            except DockwebError:
                return  # removed
            if st.status is not Status.RUNNING or st.started_at != self.started_at:
                if st.status is Status.PAUSED:
                    continue  # dockerd stops the monitor while paused, and starts it again
                return
            if st.health is None or st.health.get("Stopping"):
                return  # a stop began: dockerd stops the checks first
            start = now_rfc3339nano()
            check, late = run_check(self.mgr, self.c.id, self.cmd, timeout)
            result = {"Start": start, **check}
            if self.stop_event.is_set() or not _alive(st.pid):
                return  # stopped meanwhile (a check of a process ending): ignored, as dockerd
            try:
                self._record(result)
            except (DockwebError, OSError, ValueError):
                return
            if late is not None:
                late.join()  # the timed-out check ended before the next interval begins

    def _record(self, result: dict) -> None:
        cid = self.c.id
        with self.mgr._state_lock(cid):
            st = self.mgr.read_state(cid)
            if (
                st.status is not Status.RUNNING
                or st.started_at != self.started_at
                or st.health is None
                or st.health.get("Stopping")
            ):
                return  # the run it checked is over, or a stop began
            before = st.health.get("Status")
            st.health = record(st.health, result, self.hc, self.started_at)
            self.mgr.write_state(cid, st, durable=False)
        after = st.health["Status"]
        if after != before:
            with contextlib.suppress(Exception):
                c = self.mgr.get(cid)  # its name now
                events.container(self.mgr.root, c, "health_status: " + after)
        now = time.monotonic()
        if self.notify is not None and (after != before or now - self.mirrored >= MIRROR_EVERY):
            self.mirrored = now
            with contextlib.suppress(Exception):
                self.notify()
