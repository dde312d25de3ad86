"""One reading of a duration and an instant for the feature commands."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from features.management.arguments import duration_parse, instant_parse
from features.management.commands.feature_consistency import since_value


def test_a_duration_is_a_number_and_a_unit():
    assert duration_parse("45s") == timedelta(seconds=45)
    assert duration_parse(" 1.5h ") == timedelta(minutes=90)
    assert duration_parse("2d") == timedelta(days=2)
    with pytest.raises(ValueError, match="not a duration"):
        duration_parse("6x")


def test_an_instant_without_a_zone_is_utc_in_every_command():
    assert instant_parse("2026-12-01T10:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert since_value("2026-12-01T10:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    zoned = instant_parse("2026-12-01T10:00+02:00")
    assert zoned == datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(ValueError, match="Invalid isoformat"):
        instant_parse("yesterday")


def test_since_is_a_span_back_from_now_or_an_instant():
    before = datetime.now(UTC)
    since = since_value("1.5h")
    assert before - timedelta(minutes=90) <= since <= datetime.now(UTC) - timedelta(minutes=90)
