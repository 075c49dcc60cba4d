"""Register, login and verify, under `contract.AUTH_PREFIX`."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from microstack_auth import passwords, repository
from microstack_auth.models import Credentials, Registration, TokenResponse, User, VerifiedToken
from microstack_common import contract
from microstack_common.tokens import issue_token
from microstack_common.web import ClaimsDep, PoolDep, SettingsDep

router = APIRouter(prefix=contract.AUTH_PREFIX, tags=["auth"])


@router.post("/register", status_code=201, responses={409: {"description": "Username already taken"}})
async def register(body: Registration, pool: PoolDep) -> User:
    password_hash = await passwords.hash_password(body.password)
    try:
        user_id = await repository.create_user(pool, body.username, password_hash)
    except repository.DuplicateUserError:
        raise HTTPException(409, f"username {body.username!r} is already taken") from None
    return User(id=user_id, username=body.username)


@router.post("/login", responses={401: {"description": "Wrong username or password"}})
async def login(body: Credentials, pool: PoolDep, settings: SettingsDep) -> TokenResponse:
    user = await repository.find_user(pool, body.username)
    stored_hash = user["password_hash"] if user else None
    if user is None or not await passwords.verify_password(stored_hash, body.password):
        raise HTTPException(401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"})
    token, _ = issue_token(
        settings.jwt_signing_key,
        subject=str(user["id"]),
        username=user["username"],
        ttl_seconds=settings.jwt_ttl_seconds,
    )
    return TokenResponse(access_token=token, expires_in=settings.jwt_ttl_seconds)


@router.get("/verify", responses={401: {"description": "Missing, malformed, badly signed or expired token"}})
async def verify(claims: ClaimsDep) -> VerifiedToken:
    """Check a bearer token and return its claims (for the proxy's auth_request, or clients)."""
    return VerifiedToken(sub=claims.sub, username=claims.username, exp=claims.exp)
