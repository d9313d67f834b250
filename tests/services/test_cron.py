from datetime import datetime

import pytest

from overnight.errors import ConfigError
from overnight_ingest.cron import CronSchedule

WEDNESDAY = datetime(2026, 11, 25, 22, 30)


@pytest.mark.parametrize(
    ("expr", "moment", "fires"),
    [
        ("* * * * *", WEDNESDAY, True),
        ("30 22 * * *", WEDNESDAY, True),
        ("30 22 * * *", WEDNESDAY.replace(minute=31), False),
        ("*/15 * * * *", WEDNESDAY.replace(minute=45), True),
        ("*/15 * * * *", WEDNESDAY.replace(minute=50), False),
        ("0-10/5 * * * *", WEDNESDAY.replace(minute=10), True),
        ("0-10/5 * * * *", WEDNESDAY.replace(minute=11), False),
        ("30 21,22 * * *", WEDNESDAY, True),
        ("30 22 * * 3", WEDNESDAY, True),
        ("30 22 * * 0", WEDNESDAY, False),
        ("0 0 * * 7", datetime(2026, 11, 29, 0, 0), True),  # 7 is Sunday too
        ("30 22 1 * 3", WEDNESDAY, True),  # day-of-month OR day-of-week when both are set
        ("30 22 1 * 4", WEDNESDAY, False),
        ("30 22 25 11 *", WEDNESDAY, True),
        ("30 22 25 12 *", WEDNESDAY, False),
    ],
)
def test_matches(expr: str, moment: datetime, fires: bool) -> None:
    assert CronSchedule.parse(expr).matches(moment) is fires


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "* * * *",
        "61 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "a * * * *",
        "5-1 * * * *",
        "@daily",
    ],
)
def test_bad_expressions_name_the_problem(expr: str) -> None:
    with pytest.raises(ConfigError, match="cron expression"):
        CronSchedule.parse(expr)


def test_next_after_finds_the_next_night() -> None:
    nightly = CronSchedule.parse("0 22 * * 1-5")
    assert nightly.next_after(datetime(2026, 11, 27, 22, 0)) == datetime(
        2026, 11, 30, 22, 0
    )  # Fri → Mon
    assert CronSchedule.parse("0 0 30 2 *").next_after(WEDNESDAY) is None
