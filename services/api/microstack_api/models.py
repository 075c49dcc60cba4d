"""Request and response bodies of the items resource (they make the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from microstack_common.validation import StorableText

MAX_PAGE_SIZE = 100
# Largest id PostgreSQL's bigint holds; a bigger one in a URL is a 422, not a
# driver overflow error.
MAX_ID = 2**63 - 1

ItemName = Annotated[StorableText, Field(min_length=1, max_length=200)]
ItemDescription = Annotated[StorableText, Field(max_length=2000)]


class ItemIn(BaseModel):
    """An item as a client creates or replaces it."""

    model_config = ConfigDict(extra="forbid")

    name: ItemName
    description: ItemDescription = ""


class Item(BaseModel):
    id: int
    name: str
    description: str
    owner: str = Field(description="`sub` of the token that created the item")
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[Item]
    total: int
    limit: int
    offset: int


class InstanceInfo(BaseModel):
    service: str
    instance: str
