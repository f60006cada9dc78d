"""Passwords (argon2) and bearer secrets (long random strings kept as keyed digests).

A password is slow to check on purpose. A token or session secret has 256 bits of entropy,
so a keyed SHA-256 is enough and costs microseconds: the admission path checks one per
request."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from functools import cache, cached_property
from pathlib import Path

from argon2 import Parameters, PasswordHasher, extract_parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from governance.resources import packaged

# argon2id parameter sets by name (GOVERNANCE_PASSWORD_HASHING). The default is RFC 9106's
# second recommendation (64 MiB, 3 passes, 4 lanes: about 0.2 s of CPU here); the smaller
# is OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane: about 0.02 s), for machines
# that sign many people in on few cores. Each hash carries its parameters, so a hash made
# under one set still verifies under the other, and is made again under the configured set
# when its person next signs in (until then, its check costs what its own set costs).
PASSWORD_HASHING: dict[str, Parameters] = {
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "owasp-minimum": replace(
        profiles.RFC_9106_LOW_MEMORY, time_cost=2, memory_cost=19 * 1024, parallelism=1
    ),
}
DEFAULT_PASSWORD_HASHING = "rfc9106-low-memory"
TOKEN_PREFIX = "gov_"
MIN_PASSWORD_LENGTH = 12
MIN_DIFFERENT_CHARACTERS = 5
# The 10,000 most common passwords of SecLists (danielmiessler/SecLists, MIT licence:
# Passwords/Common-Credentials/10k-most-common.txt, with LF line endings), one a line.
COMMON_PASSWORDS = packaged("auth", "common-passwords.txt")
# What is stripped from both ends before the list is asked: `Password2024!` is `password`.
_DECORATION = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class Passwords:
    """Hashes passwords with argon2id under one named parameter set, and checks them.

    A refused check must take as long whether or not the name exists. A name without an
    account is checked against a dummy hash made with the configured parameters, which
    costs what a real account's check costs while every hash uses them. Once the setting
    has changed, hashes made under the old parameters remain until their people sign in
    again, and a check costs what its own hash's parameters cost: `even_out` is then told
    the stored hashes, and every refused check is made to last as long as a check under
    the costliest parameters in use."""

    def __init__(self, hashing: str = DEFAULT_PASSWORD_HASHING) -> None:
        self.hashing = hashing
        self._parameters = PASSWORD_HASHING[hashing]
        self._hasher = PasswordHasher.from_parameters(self._parameters)
        self.refusal_seconds = 0.0  # how long a refused check lasts at the least

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def matches(self, password_hash: str | None, password: str) -> bool:
        """Whether the password is the hashed one (None: there is no such account)."""
        started = time.monotonic()
        matched: bool
        try:
            matched = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            matched = False
        if matched and password_hash:
            return True
        time.sleep(max(0.0, self.refusal_seconds - (time.monotonic() - started)))
        return False

    def rehashed(self, password_hash: str, password: str) -> str | None:
        """A new hash of the (verified) password when `password_hash` was made with other
        parameters than the configured ones, else None."""
        return self.hash(password) if self._hasher.check_needs_rehash(password_hash) else None

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))

    def even_out(self, stored_hashes: Iterable[str]) -> None:
        """Given every stored hash: when they were made under more than one parameter set,
        each refused check lasts at least as long as the slowest of three checks under the
        costliest of them (measured here); otherwise no check is lengthened."""
        in_use = [self._parameters]
        for stored in stored_hashes:
            with contextlib.suppress(InvalidHashError, ValueError):
                parameters = extract_parameters(stored)
                if parameters not in in_use:
                    in_use.append(parameters)
        if len(in_use) == 1:
            self.refusal_seconds = 0.0
            return
        costliest = max(in_use, key=lambda p: (p.memory_cost * p.time_cost, p.parallelism))
        hasher = PasswordHasher.from_parameters(costliest)
        sample = hasher.hash(secrets.token_urlsafe(16))
        timings = []
        for _ in range(3):
            started = time.monotonic()
            with contextlib.suppress(VerificationError):
                hasher.verify(sample, secrets.token_urlsafe(16))
            timings.append(time.monotonic() - started)
        self.refusal_seconds = max(timings)


def password_problem(password: str) -> str | None:
    """Why this password is refused, or None: shorter than 12 characters, of fewer than
    five different characters, or one of the common passwords, also with digits or symbols
    around it or repeated (NIST SP 800-63B 5.1.1.2: refuse values known to be commonly
    used). Guessing is slowed by the sign-in lockout; this keeps the first guesses from
    being right."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"is {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}"
    if len(set(password)) < MIN_DIFFERENT_CHARACTERS:
        return f"has fewer than {MIN_DIFFERENT_CHARACTERS} different characters"
    if _common_forms(password) & _common_passwords():
        return "is a common password, or one with digits or symbols added or repeated"
    return None


def new_password() -> str:
    """A generated password (for `init` and the demo), always one the policy allows."""
    while True:
        candidate = secrets.token_urlsafe(12)
        if password_problem(candidate) is None:
            return candidate


def _common_forms(password: str) -> set[str]:
    """The password as guessers try it: as typed, undecorated, and the unit it repeats."""
    typed = password.strip().lower()
    forms = {typed, _DECORATION.sub("", typed)}
    for form in list(forms):
        repeated = re.fullmatch(r"(.+?)\1+", form)
        if repeated:
            forms.add(repeated[1])
    return forms - {""}


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(COMMON_PASSWORDS.read_text(encoding="utf-8").lower().split())


def new_token() -> tuple[str, str]:
    """(public id, full secret to show once). The id lets us name a token in lists and logs
    without revealing it."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def token_id_of(secret: str) -> str | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token_id, _, rest = secret[len(TOKEN_PREFIX) :].partition("_")
    return token_id if len(token_id) == 12 and rest else None


class DigestKey:
    """The server-side key of the keyed digests: a stolen database alone does not let anyone
    test guesses of tokens or sessions."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> DigestKey:
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                return cls(path.read_bytes())
            key = secrets.token_bytes(32)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(key)
            return cls(key)

    def digest(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    def derive(self, purpose: str, salt: str) -> str:
        """A secret derived from the key, so it need not be stored: the same purpose and
        salt give it again, and the purpose keeps it apart from every stored digest."""
        return hmac.new(self._key, f"{purpose}\x00{salt}".encode(), hashlib.sha256).hexdigest()
