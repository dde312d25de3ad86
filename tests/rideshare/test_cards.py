from datetime import date

import pytest

from rideshare import cards


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4000000000000002",
        "4000000000009995",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3566002020360505",
        "30569309025904",
    ],
)
def test_luhn_accepts_valid_numbers(number):
    assert cards.luhn_valid(number) is True


@pytest.mark.parametrize(
    "number",
    ["4242424242424241", "4000000000000001", "1234567812345678", "", "abcd", "42424242424"],
)
def test_luhn_refuses_invalid_numbers(number):
    assert cards.luhn_valid(number) is False


def test_luhn_refuses_non_ascii_digits():
    # Arabic-Indic digits are str.isdigit() but are not card digits.
    assert cards.luhn_valid("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢") is False


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("371449635398431", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("3566002020360505", "jcb"),
        ("30569309025904", "diners"),
        ("9999999999999995", "unknown"),
    ],
)
def test_brand_of(number, brand):
    assert cards.brand_of(number) == brand


def test_fingerprint_is_keyed_stable_and_not_the_number():
    number = "4242424242424242"
    first = cards.fingerprint(number, key="key-one")
    assert first == cards.fingerprint("4242 4242 4242 4242", key="key-one")
    assert first == cards.fingerprint(number, key=b"key-one")
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert number not in first
    assert first != cards.fingerprint(number, key="key-two")
    assert first != cards.fingerprint("5555555555554444", key="key-one")


def test_last4_and_normalise():
    assert cards.normalise(" 4242-4242 4242\t4242 ") == "4242424242424242"
    assert cards.last4("4242 4242 4242 4242") == "4242"


def test_a_card_is_valid_through_its_expiry_month():
    assert cards.is_expired(exp_month=5, exp_year=2025, today=date(2025, 5, 31)) is False
    assert cards.is_expired(exp_month=5, exp_year=2025, today=date(2025, 6, 1)) is True
    assert cards.is_expired(exp_month=12, exp_year=2024, today=date(2025, 1, 1)) is True
