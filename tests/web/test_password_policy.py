"""The portal's password rule refuses what an attacker tries first, and failed logins are
counted per network, so a spray of one common password over the published registration numbers
(every announcement prints them) takes no account.

Found by review B: `12345678`, `password`, `qwertyui`, `11111111` and `iloveyou` were taken at
registration (201), and one guess per number from a new IPv6 /64 each time met no limit: every
account was logged into."""

from __future__ import annotations

import pytest

from gateway.limits import RateLimiter
from tests.roundkit import registration
from tests.web.test_portal import (
    PASSWORD,
    app_for,
    client_on,
    field_errors,
    form_of,
    log_in,
    open_round,
    operator_api,  # noqa: F401  (fixture)
    registration_number,
    submit_registration,
    text_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

COMMON = ["12345678", "password", "qwertyui", "11111111", "iloveyou"]
WEAK = "Kata sandi: terlalu mudah ditebak"


async def test_common_passwords_and_the_applicants_own_words_are_refused_at_registration(
    gateway_state,
    operator_api,  # noqa: F811
    tmp_path,
):
    round_id = await open_round(operator_api, tmp_path, "pw-common")
    app = app_for(gateway_state)
    reg = registration(40, "F1", name="Sri Wahyuningsih")
    own = ["sriwahyuningsih", "Wahyuningsih!", "kabupatenuji", "cpns2027", "sscasn123"]
    for i, password in enumerate(COMMON + own):
        async with client_on(app, (f"198.51.100.{i + 1}", 1)) as b:
            r = await submit_registration(b, round_id, form_of(reg, password=password))
        assert r.status_code == 422, (password, r.status_code)
        [said] = field_errors(r.text)["password"]
        assert said.startswith(WEAK), (password, said)
        assert password.lower() not in text_of(r.text).lower(), "the password is never shown"
    async with client_on(app, ("198.51.100.99", 1)) as b:
        r = await submit_registration(b, round_id, form_of(reg, password="12345678"))
        assert field_errors(r.text)["password"] == [
            f"{WEAK}: termasuk kata sandi yang paling umum dipakai"
        ]
        r = await submit_registration(b, round_id, form_of(reg, password="sriwahyuningsih"))
        assert "data Anda sendiri" in field_errors(r.text)["password"][0]
        assert (await submit_registration(b, round_id, form_of(reg))).status_code == 201


async def test_a_spray_of_common_passwords_over_published_numbers_takes_no_account(
    gateway_state,
    operator_api,  # noqa: F811
    tmp_path,
):
    round_id = await open_round(operator_api, tmp_path, "pw-spray")
    app = app_for(gateway_state)
    # The network's allowance on a clock that stands still, so none comes back during the test.
    app.state.portal.network_failure_limit = RateLimiter(20, clock=lambda: 0.0)
    numbers = []
    for i, password in enumerate(COMMON):
        reg = registration(50 + i, "F1")
        async with client_on(app, (f"198.51.100.{i + 1}", 1)) as b:
            refused = await submit_registration(b, round_id, form_of(reg, password=password))
            assert refused.status_code == 422, password
            r = await submit_registration(b, round_id, form_of(reg))  # a password not guessed
            assert r.status_code == 201
            numbers.append(registration_number(r.text))
    # The attacker: the published numbers, the common list, a new /64 of one /48 per request.
    answers = []
    n = 0
    for password in COMMON:
        for number in numbers:
            n += 1
            async with client_on(app, (f"2001:db8:77:{n:x}::1", 1)) as attacker:
                answers.append((await log_in(attacker, round_id, number, password)).status_code)
    assert 303 not in answers
    # 20 failures a minute from one /48, whatever /64 each comes from: then 429.
    assert answers[:20] == [401] * 20 and set(answers[20:]) == {429}, answers
    async with client_on(app, ("2001:db8:77:ffff::1", 1)) as attacker:
        held = await log_in(attacker, round_id, numbers[0], "bukan-sandi-ini")
    assert "Terlalu banyak percobaan masuk yang gagal dari jaringan Anda" in text_of(held.text)
    # Logins that succeed cost the /48 nothing: applicants behind one carrier's /48 log in.
    for i in range(25):
        async with client_on(app, (f"2001:db8:78:{i:x}::1", 1)) as applicant:
            assert (await log_in(applicant, round_id, numbers[0], PASSWORD)).status_code == 303


async def test_scoring_is_bounded_by_the_first_characters_of_a_password():
    """zxcvbn's cost grows with the square of the length times its l33t substitutions: only the
    first SCORED_LENGTH characters are scored (the figures are in gateway/password_strength.py;
    no timing here), so what follows them changes nothing, good or bad."""
    from gateway.password_strength import SCORED_LENGTH, guessable, own_words

    l33t = "4@8({[<3=69&1!|7+0$5%2"
    worst = (l33t * 6)[:128]
    assert guessable(worst, own_words("Peserta 1")) is None
    assert guessable(worst[:SCORED_LENGTH] + "password", []) is None
    assert guessable("passwordpassword" * 8, []) is not None
    assert guessable("x" * SCORED_LENGTH + "Zq7#kL2!mW9@vR4$", []) is not None
