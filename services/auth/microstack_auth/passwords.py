"""argon2id password hashing, off the event loop.

Hashing is deliberately slow (tens of milliseconds of CPU), so it runs in a
worker thread: the event loop keeps serving health checks and other requests
while a login is being verified.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verified when the username does not exist, so that a login for an unknown
# user costs as much as one with a wrong password and timing does not reveal
# which usernames exist.
_DUMMY_HASH = _hasher.hash("microstack-timing-equaliser")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
