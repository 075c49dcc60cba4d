"""JWTs issued by auth and verified locally by api with the shared signing key.

HS256 with the algorithm pinned on decode: a token claiming `alg: none` or an
asymmetric algorithm is rejected instead of being verified the way it asks.
`exp`, `iat` and `sub` are required, so a token without expiry never passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ISSUER = "microstack-auth"


class InvalidTokenError(Exception):
    """The token is missing, malformed, badly signed or expired; the message says which."""


@dataclass(frozen=True)
class Claims:
    sub: str
    username: str
    exp: int


def issue_token(key: str, *, subject: str, username: str, ttl_seconds: int) -> tuple[str, int]:
    """Return (token, expiry as a Unix time)."""
    now = int(time.time())
    expires = now + ttl_seconds
    payload = {
        "sub": subject,
        "username": username,
        "iat": now,
        "exp": expires,
        "iss": ISSUER,
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM), expires


def verify_token(key: str, token: str) -> Claims:
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("token expired") from None
    except jwt.InvalidTokenError as error:
        raise InvalidTokenError(f"invalid token: {error}") from None
    username = payload.get("username")
    if not isinstance(username, str):
        raise InvalidTokenError("invalid token: no username claim")
    return Claims(sub=str(payload["sub"]), username=username, exp=int(payload["exp"]))
