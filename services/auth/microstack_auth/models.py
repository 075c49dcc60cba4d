"""Request and response bodies of the auth endpoints (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from microstack_common.validation import StorableText

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{3,64}$")]
# argon2 hashes any length, but an unbounded password is a cheap way to make
# the server hash megabytes; 256 characters is plenty for a passphrase.
Password = Annotated[StorableText, Field(min_length=8, max_length=256)]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password


class Credentials(BaseModel):
    """Login input. Not validated against the registration rules: a wrong
    username or password is a 401, whatever it looks like."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[StorableText, Field(min_length=1, max_length=256)]
    password: Annotated[StorableText, Field(min_length=1, max_length=256)]


class User(BaseModel):
    id: int
    username: str


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class VerifiedToken(BaseModel):
    sub: str
    username: str
    exp: int = Field(description="Expiry as a Unix time")
