"""Secrets of the console's people, and how they are kept.

Passwords are chosen by people, so they are guessable: they are stored only as argon2id
hashes (argon2-cffi's defaults, RFC 9106's low-memory profile: salted, slow and memory-hard),
checked off the event loop. Session ids and API tokens are 32 random bytes made here: nobody
can guess them, so a fast hash (SHA-256) is enough to make a stolen table useless, and lets
every request find its row by the hash in one indexed look-up."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
TOKEN_PREFIX = "dsp_"
# Compared against when the account does not exist, so a wrong name takes as long to
# refuse as a wrong password and names cannot be told apart by timing.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class WeakPassword(ValueError):
    pass


def check_password_rules(password: str) -> None:
    """Raises `WeakPassword` naming what is wrong."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def _normalised(password: str) -> str:
    # The same password typed on another keyboard (composed or decomposed accents) matches.
    return unicodedata.normalize("NFC", password)


def hash_password(password: str) -> str:
    return _HASHER.hash(_normalised(password))


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """True when `password` is the one hashed; with no hash, spends the same time and is
    False."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, _normalised(password)) and (
            password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def password_matches_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(password_matches, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """The hash was made with weaker parameters than today's: store a new one at login."""
    return _HASHER.check_needs_rehash(password_hash)


def generate_password() -> str:
    """A one-time password: 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


def new_secret() -> str:
    """A session id: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """An API token: a recognisable prefix (secret scanners, logs) and 32 random bytes."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """What is stored of a session id or an API token."""
    return hashlib.sha256(secret.encode()).hexdigest()
