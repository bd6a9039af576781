"""The container status guards and status text (moby's container.State.String()), defined
once in dockweb.runtime.containers.state: pure functions, tested one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockweb.runtime.containers.state import ZERO_TIME, State, Status, status_text

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
AGO_3S = NOW - timedelta(seconds=3)
AGO_2M = NOW - timedelta(minutes=2)


def allowed(guard) -> set[Status]:
    return {s for s in Status if guard(s)}


def test_it_allows_start_from_created_or_exited():
    assert allowed(Status.can_start) == {Status.CREATED, Status.EXITED}


def test_it_allows_stop_with_processes():
    assert allowed(Status.can_stop) == {Status.RUNNING, Status.PAUSED, Status.RESTARTING}


def test_it_allows_kill_with_processes():
    assert allowed(Status.can_kill) == {Status.RUNNING, Status.PAUSED, Status.RESTARTING}


def test_it_allows_pause_when_running():
    assert allowed(Status.can_pause) == {Status.RUNNING}


def test_it_allows_unpause_when_paused():
    assert allowed(Status.can_unpause) == {Status.PAUSED}


def test_it_allows_exec_when_running():
    assert allowed(Status.can_exec) == {Status.RUNNING}


def test_it_allows_restart_unless_restarting_removing_or_dead():
    assert allowed(Status.can_restart) == {
        Status.CREATED,
        Status.RUNNING,
        Status.EXITED,
        Status.PAUSED,
    }


def test_it_allows_remove_without_force_only_when_stopped():
    assert allowed(Status.can_remove) == {Status.CREATED, Status.EXITED, Status.DEAD}


def test_it_allows_remove_with_force_unless_removing():
    assert allowed(lambda s: s.can_remove(force=True)) == set(Status) - {Status.REMOVING}


def test_it_calls_active_what_has_processes():
    assert {s for s in Status if s.is_active} == {
        Status.RUNNING,
        Status.PAUSED,
        Status.RESTARTING,
    }


def text(status, started=AGO_2M, finished=AGO_3S, code=0) -> str:
    return status_text(status, started_at=started, finished_at=finished, exit_code=code, now=NOW)


def test_it_says_up_since_the_start_when_running():
    assert text(Status.RUNNING, finished=None) == "Up 2 minutes"


def test_it_says_paused_after_the_uptime():
    assert text(Status.PAUSED, finished=None) == "Up 2 minutes (Paused)"


def test_it_says_restarting_with_the_last_exit_and_its_age():
    assert text(Status.RESTARTING, code=1) == "Restarting (1) 3 seconds ago"


def test_it_says_removal_in_progress():
    assert text(Status.REMOVING) == "Removal In Progress"


def test_it_says_dead():
    assert text(Status.DEAD) == "Dead"


def test_it_says_exited_with_the_code_and_its_age():
    assert text(Status.EXITED, code=137) == "Exited (137) 3 seconds ago"


def test_it_says_created_when_never_started():
    assert text(Status.CREATED, started=None, finished=None) == "Created"


def test_it_says_created_for_an_exit_without_a_start():
    # moby: StartedAt zero comes first, whatever the status (a start that failed)
    assert text(Status.EXITED, started=None, code=127) == "Created"


def test_it_says_nothing_for_a_start_without_a_finish_when_stopped():
    assert text(Status.EXITED, finished=None) == ""


def test_it_takes_the_status_as_its_name():
    assert text("exited", code=2) == "Exited (2) 3 seconds ago"


def test_it_reads_a_zero_start_as_go_does():
    # time.Since of Go's zero time saturates at the largest duration: 292 years
    assert text(Status.RUNNING, started=None, finished=None) == "Up 292 years"


def test_it_gives_a_state_its_text_from_the_go_times_of_its_file():
    st = State(
        status=Status.EXITED,
        exit_code=3,
        started_at="2026-01-02T03:02:05.5Z",
        finished_at="2026-01-02T03:04:02Z",
    )
    assert st.status_text(NOW) == "Exited (3) 3 seconds ago"
    assert State(finished_at=ZERO_TIME).status_text(NOW) == "Created"
