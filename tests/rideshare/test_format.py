"""The template filters that put numbers in people's words."""

from __future__ import annotations

import pytest

from rideshare.templatetags.ride_format import delay, money


@pytest.mark.parametrize(
    ("ms", "words"),
    [
        (None, ""),
        (12.4, "12 ms"),
        (2400.0, "2.4 s"),
        (45_000.0, "45 s"),
        (180_000.0, "3 min"),
        (7_200_000.0, "2 h"),
    ],
)
def test_a_delay_reads_in_the_unit_a_person_would_use(ms, words):
    assert delay(ms) == words


def test_money_is_shown_with_its_symbol():
    assert money(2014, "EUR") == "€20.14"
    assert money(2014, "CHF") == "20.14 CHF"
