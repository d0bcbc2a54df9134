"""Whether a new portal password is too easy to guess, by zxcvbn's estimate of the guesses an
attacker needs (its bundled lists of common passwords, words and names, keyboard patterns,
repeats, sequences, dates), with the applicant's own data and the round's words counted as the
first an attacker would try.

Registration numbers are printed in every announcement, so an attacker can try one common
password on every account, each from a fresh address: the per-account and per-address limits
never meet such a spray. What stops it is that no account holds a common password.

Why score 2 (at least 10^6 guesses): a login is an online attack, held to 10 failures and then
one every six minutes per account and 20 failures a minute per network (gateway/portal.py), a
few hundred guesses a day at one account; a password outside the million likeliest is then out
of reach for the length of a round, and a spray over every published number tries only the first
few of them. Scores 3 and 4 are for hashes stolen and cracked offline (argon2id already slows
that); asking them of applicants turns away passphrases a person can remember, with little gained
against the attack the portal meets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from zxcvbn import zxcvbn

# zxcvbn is scored by the score of a password's first SCORED_LENGTH characters. Its cost grows
# with the square of the length times the l33t substitutions it tries (up to 736 when the text
# holds all 22 l33t characters): on the reference machine its worst case (a password of l33t
# characters) is about 5 ms at 12 characters, 51 ms at 16, 150 ms at 20, 0.3 s at 24 and 4.8 s
# at 128, where a human password takes 1-5 ms. The one scoring thread is shared by every
# registration, so the worst case is what a flood of crafted forms could make each cost: 16
# keeps it near a human password's. A password is at least as hard to guess as its beginning, so
# a beginning that scores MIN_SCORE (10^6 guesses, within reach of 16 characters) is enough; a
# longer one whose beginning is guessable (`passwordpassword...`) is refused, rightly.
SCORED_LENGTH = 16
MIN_SCORE = 2
# The words of every round that an attacker tries with the applicant's own data.
ROUND_WORDS = ("cpns", "casn", "pppk", "asn", "bkn", "sscasn", "kata sandi", "katasandi")

# One thread: zxcvbn keeps the user inputs of a call in a module-level dictionary, so two calls
# at once could score one applicant's password against another's data; and a slow call stays off
# the event loop, which keeps serving other requests meanwhile.
_SCORER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-strength")


def own_words(*texts: str) -> list[str]:
    """The user inputs zxcvbn counts as known to an attacker: each text whole, without its
    spaces, and each of its words of 3 characters or more, lower-cased."""
    found: list[str] = []
    for text in (*texts, *ROUND_WORDS):
        text = text.strip().lower()
        if not text:
            continue
        words = [w for w in text.replace("-", " ").replace(".", " ").split() if len(w) >= 3]
        for word in (text, "".join(text.split()), *words):
            if word not in found:
                found.append(word)
    return found


def _hint(sequence: list[dict]) -> str:
    """What made the password guessable, from zxcvbn's matches: the longest one's kind, in
    Indonesian (its own feedback is English). Never any part of the password itself."""
    matches = [m for m in sequence if m.get("pattern") != "bruteforce"]
    if not matches:
        return "terlalu pendek untuk isinya; tambahkan beberapa kata yang tidak umum"
    longest = max(matches, key=lambda m: len(m.get("token", "")))
    pattern = longest["pattern"]
    if pattern == "dictionary":
        name = longest.get("dictionary_name")
        if name == "user_inputs":
            return "memuat data Anda sendiri (nama, NIK) atau nama instansi atau seleksi"
        if name == "passwords":
            return "termasuk kata sandi yang paling umum dipakai"
        return "memuat kata atau nama yang umum"
    return {
        "spatial": "memuat deretan tombol papan ketik (seperti qwerty)",
        "repeat": 'memuat pengulangan (seperti "aaa" atau "abcabc")',
        "sequence": 'memuat urutan (seperti "abcd" atau "6543")',
        "regex": "memuat tahun",
        "date": "memuat tanggal",
    }.get(pattern, "mudah ditebak oleh program penebak kata sandi")


def guessable(password: str, known: Iterable[str]) -> str | None:
    """The reason `password` is refused as too easy to guess, or None when it is not: zxcvbn's
    score of its first SCORED_LENGTH characters, with `known` as the applicant's own words."""
    result = zxcvbn(password[:SCORED_LENGTH], user_inputs=list(known))
    if result["score"] >= MIN_SCORE:
        return None
    return f"terlalu mudah ditebak: {_hint(result['sequence'])}"


async def too_guessable(password: str, known: Iterable[str]) -> str | None:
    """`guessable`, run in the scorer's own thread (one call at a time, off the event loop)."""
    words = list(known)
    return await asyncio.get_running_loop().run_in_executor(_SCORER, guessable, password, words)
