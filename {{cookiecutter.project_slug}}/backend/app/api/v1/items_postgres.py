"""Items: an example resource stored in PostgreSQL, showing the conventions to follow.

Request and response bodies are Pydantic models, so invalid input gets a 422 with the details;
every integer a client sends is bounded by the column it is compared with; a new item is a 201
with its `Location`; a missing item is a 404 and a taken name a 409. The queries live in
`app/db/items.py` only, and come in as dependencies with the request's session: a read gets
an `ItemReader` (no transaction: one round trip), a write an `ItemRepository` (a transaction).
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.db.engine import ReadSession, Session
from app.db.items import ItemReader, ItemRepository
from app.db.models import MAX_INTEGER


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    # numeric(12, 2): at most 10 digits before the point and 2 after.
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class Item(ItemCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime


# async: FastAPI runs a plain `def` dependency in its thread pool, a costly hop per request.
async def get_item_reader(session: ReadSession) -> ItemReader:
    return ItemReader(session)


async def get_item_repository(session: Session) -> ItemRepository:
    return ItemRepository(session)


Reader = Annotated[ItemReader, Depends(get_item_reader)]
Repository = Annotated[ItemRepository, Depends(get_item_repository)]
ItemId = Annotated[int, Path(ge=1, le=MAX_INTEGER)]

router = APIRouter(prefix="/items", tags=["items"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An item with this name exists"}},
)
async def create_item(
    new_item: ItemCreate, items: Repository, request: Request, response: Response
) -> Item:
    item = await items.add(new_item.name, new_item.description, new_item.price)
    if item is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="An item with this name exists")
    response.headers["Location"] = request.app.url_path_for("get_item", item_id=str(item.id))
    return Item.model_validate(item)


@router.get("")
async def list_items(
    items: Reader,
    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[Item]:
    return [Item.model_validate(item) for item in await items.page(offset, limit)]


@router.get("/{item_id}", responses={404: {"description": "No item with this id"}})
async def get_item(item_id: ItemId, items: Reader) -> Item:
    item = await items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
    return Item.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No item with this id"}},
)
async def delete_item(item_id: ItemId, items: Repository) -> None:
    if not await items.remove(item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
