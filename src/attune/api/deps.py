"""FastAPI dependencies shared by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from attune.auth.tokens import Claims
from attune.errors import Unauthorized
from attune.platform import Platform

#: Documents ``bearer_auth`` in the OpenAPI; the check itself runs in ``ApiGuard``.
bearer_scheme = HTTPBearer(scheme_name="bearer_auth", auto_error=False)


def platform_of(request: Request) -> Platform:
    """The composition root the app was built with."""
    platform: Platform = request.app.state.platform
    return platform


# The dependencies are coroutines: FastAPI runs a plain ``def`` dependency in a worker thread,
# two thread hand-offs per request for what is an attribute read.
async def get_platform(request: Request) -> Platform:
    return platform_of(request)


async def get_claims(request: Request, _token: object = Depends(bearer_scheme)) -> Claims:
    claims = getattr(request.state, "claims", None)
    if not isinstance(claims, Claims):
        raise Unauthorized("Missing authentication token")
    return claims


PlatformDep = Annotated[Platform, Depends(get_platform)]
ClaimsDep = Annotated[Claims, Depends(get_claims)]

#: Router-level dependency for every protected router.
AUTH = [Depends(get_claims)]
