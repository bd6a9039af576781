"""Sizes and durations, as docker/go-units prints them (cases from its tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockweb.runtime.units import (
    bytes_size,
    created_since,
    human_duration,
    human_size,
    human_size_precision3,
)

KB, MB, GB, TB, PB = 1000, 1000**2, 1000**3, 1000**4, 1000**5
KiB, MiB, GiB, TiB, PiB = 1024, 1024**2, 1024**3, 1024**4, 1024**5


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * MB, "2MB"),
        (3.42 * GB, "3.42GB"),
        (5.372 * TB, "5.372TB"),
        (2.22 * PB, "2.22PB"),
        (10000000000000 * PB, "1e+04YB"),
        (0, "0B"),
        (999, "999B"),
    ],
)
def test_it_prints_human_sizes(size, expected):
    assert human_size(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (4_257_000, "4.26MB"),
        (1_240_000, "1.24MB"),
        (999_999, "1e+03kB"),
        (77_800_000, "77.8MB"),
        (1024, "1.02kB"),
    ],
)
def test_it_prints_docker_images_sizes_with_precision_3(size, expected):
    assert human_size(size, 3) == expected
    assert human_size_precision3(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1024, "1KiB"),
        (1024 * 1024, "1MiB"),
        (2 * MiB, "2MiB"),
        (3.42 * GiB, "3.42GiB"),
        (5.372 * TiB, "5.372TiB"),
        (2.22 * PiB, "2.22PiB"),
        (KiB * KiB * KiB * KiB * KiB * PiB, "1.049e+06YiB"),
        (512, "512B"),
    ],
)
def test_it_prints_binary_sizes(size, expected):
    assert bytes_size(size) == expected


SECOND, MINUTE, HOUR = 1, 60, 3600
DAY = 24 * HOUR
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.45, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3 * MINUTE, "3 minutes"),
        (35 * MINUTE + 40, "35 minutes"),
        (59 * MINUTE, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MINUTE, "About an hour"),
        (HOUR + 31 * MINUTE, "2 hours"),
        (3 * HOUR + 29 * MINUTE, "3 hours"),
        (3 * HOUR + 31 * MINUTE, "4 hours"),
        (4 * HOUR, "4 hours"),
        (DAY, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        (-5, "Less than a second"),
    ],
)
def test_it_prints_human_durations(seconds, expected):
    assert human_duration(seconds) == expected


def test_it_says_how_long_ago_an_image_was_created():
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert created_since(now - timedelta(weeks=2), now) == "2 weeks ago"
    assert created_since(now - timedelta(seconds=30), now) == "30 seconds ago"
    naive = datetime(2024, 5, 1, 11, 0)
    assert created_since(naive, now) == "About an hour ago"


def test_it_gives_nothing_for_a_zero_creation_time():
    assert created_since(None) == ""
    assert created_since(datetime(1, 1, 1, tzinfo=UTC)) == ""


def test_it_uses_the_current_time_by_default():
    assert created_since(datetime.now(UTC) - timedelta(days=3)) == "3 days ago"


def test_it_reads_times_and_durations_as_mobys_get_timestamp():
    from datetime import UTC, datetime

    from dockweb.runtime.units import TimestampError, get_timestamp

    now = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
    noon = now.replace(microsecond=0).timestamp()
    assert get_timestamp("1s", now) == noon - 1  # whole seconds, as Unix() truncates
    assert get_timestamp("1h30m", now) == noon - 5400
    assert get_timestamp("-1s", now) == noon + 1
    assert get_timestamp("0", now) == 0  # "0" is Unix time 0, not a duration
    assert get_timestamp("1700000000.5", now) == 1700000000.5
    assert get_timestamp("2026-01-01T10:00:00Z", now) == noon - 2 * 3600
    assert get_timestamp("2026-01-01T10:00:00.25+02:00", now) == noon - 4 * 3600 + 0.25
    local = datetime(2026, 1, 1, 10).astimezone().timestamp()  # no zone: local time
    assert get_timestamp("2026-01-01T10", now) == local
    assert get_timestamp("2026-01-01", now) == datetime(2026, 1, 1).astimezone().timestamp()
    with pytest.raises(TimestampError, match='^failed to parse value as time or duration: "x"$'):
        get_timestamp("x", now)
