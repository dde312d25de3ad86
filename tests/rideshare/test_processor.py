import pytest

from rideshare import processor
from rideshare.models import ProcessorCharge, ProcessorVault

from .factories import MASTERCARD_OK, VISA_DECLINED, VISA_NO_FUNDS, VISA_OK

pytestmark = pytest.mark.django_db


def _token(number: str) -> str:
    return processor.tokenise(number=number, exp_month=12, exp_year=2099)


def test_tokenise_vaults_the_behaviour_and_never_the_number():
    token = _token(VISA_OK)
    assert token.startswith("tok_")
    assert len(token) == 36
    vault = ProcessorVault.objects.get(token=token)
    assert vault.behaviour == "approve"
    assert VISA_OK not in str(ProcessorVault.objects.values().get(token=token))


def test_tokenise_gives_a_new_token_each_time():
    assert _token(VISA_OK) != _token(VISA_OK)


def test_tokenise_refuses_a_number_failing_luhn():
    with pytest.raises(processor.ProcessorError, match="invalid card number"):
        _token("4242424242424241")
    assert not ProcessorVault.objects.exists()


def test_4242_is_approved():
    result = processor.authorize(token=_token(VISA_OK), amount_cents=2014)
    assert result.approved is True
    assert result.decline_code == ""
    assert result.auth_code.startswith("auth_")
    charge = ProcessorCharge.objects.get(auth_code=result.auth_code)
    assert (charge.amount_cents, charge.status) == (2014, "authorized")


def test_0002_is_declined_card_declined():
    result = processor.authorize(token=_token(VISA_DECLINED), amount_cents=2014)
    assert result == processor.AuthorizationResult(
        approved=False, auth_code="", decline_code="card_declined"
    )
    assert not ProcessorCharge.objects.exists()


def test_9995_is_declined_insufficient_funds():
    result = processor.authorize(token=_token(VISA_NO_FUNDS), amount_cents=2014)
    assert result == processor.AuthorizationResult(
        approved=False, auth_code="", decline_code="insufficient_funds"
    )


def test_any_other_luhn_valid_number_is_approved():
    assert processor.authorize(token=_token(MASTERCARD_OK), amount_cents=700).approved is True


def test_authorize_refuses_unknown_tokens_and_non_positive_amounts():
    with pytest.raises(processor.ProcessorError, match="unknown card token"):
        processor.authorize(token="tok_nope", amount_cents=100)
    with pytest.raises(processor.ProcessorError, match="the amount must be positive"):
        processor.authorize(token=_token(VISA_OK), amount_cents=0)


def test_capture_part_then_refund_up_to_the_capture():
    auth = processor.authorize(token=_token(VISA_OK), amount_cents=2014).auth_code
    processor.capture(auth_code=auth, amount_cents=500)
    with pytest.raises(processor.ProcessorError, match="cannot capture a captured authorisation"):
        processor.capture(auth_code=auth, amount_cents=500)
    processor.refund(auth_code=auth, amount_cents=200)
    with pytest.raises(processor.ProcessorError, match="cannot refund 301: 300 left"):
        processor.refund(auth_code=auth, amount_cents=301)
    processor.refund(auth_code=auth, amount_cents=300)
    charge = ProcessorCharge.objects.get(auth_code=auth)
    assert (charge.status, charge.captured_cents, charge.refunded_cents) == ("captured", 500, 500)


def test_capture_cannot_exceed_the_hold():
    auth = processor.authorize(token=_token(VISA_OK), amount_cents=700).auth_code
    with pytest.raises(processor.ProcessorError, match="cannot capture 701 of 700 held"):
        processor.capture(auth_code=auth, amount_cents=701)


def test_void_releases_the_hold_once():
    auth = processor.authorize(token=_token(VISA_OK), amount_cents=700).auth_code
    processor.void(auth_code=auth)
    assert ProcessorCharge.objects.get(auth_code=auth).status == "voided"
    with pytest.raises(processor.ProcessorError, match="cannot void a voided authorisation"):
        processor.void(auth_code=auth)
    with pytest.raises(processor.ProcessorError, match="cannot capture a voided authorisation"):
        processor.capture(auth_code=auth, amount_cents=700)
    with pytest.raises(processor.ProcessorError, match="cannot refund a voided authorisation"):
        processor.refund(auth_code=auth, amount_cents=700)
