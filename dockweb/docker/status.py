"""dockerd's ``State.String()``: the STATUS column of ``docker ps``."""

from __future__ import annotations

from datetime import UTC, datetime

from dockweb.runtime.units import human_duration


def status_text(
    status: str,
    *,
    started_at: datetime | None,
    finished_at: datetime | None,
    exit_code: int = 0,
    now: datetime | None = None,
) -> str:
    """dockerd's ``State.String()`` for a status and its times (Go zero time = None):
    "Up 3 seconds", "Up 2 hours (Paused)", "Exited (0) 5 minutes ago", "Created"."""
    now = now or datetime.now(UTC)

    def ago(t: datetime | None) -> str:
        return human_duration(((now - t).total_seconds()) if t else 0.0)

    if status == "paused":
        return f"Up {ago(started_at)} (Paused)"
    if status == "restarting":
        return f"Restarting ({exit_code}) {ago(finished_at)} ago"
    if status == "running":
        return f"Up {ago(started_at)}"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if started_at is None:
        return "Created"
    if finished_at is None:
        return ""
    return f"Exited ({exit_code}) {ago(finished_at)} ago"
