"""Items: an example resource kept in process memory, showing the conventions to follow.

Request and response bodies are Pydantic models, so invalid input gets a 422 with the details;
money is a `Decimal` kept to the cent, never a float; every integer a client sends is bounded,
so a huge one is a 422 too; a new item is a 201 with its `Location`; a missing item is a 404
and a taken name a 409. The store comes in as a dependency, so the storage lives in one place:
`ItemStore` here, a repository over the request's database session once there is a database.
"""

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

# The bound of the ids and offsets a client sends: a database's `integer`, should the store
# become one, and far below what itertools.islice accepts.
MAX_INTEGER = 2**31 - 1
CENT = Decimal("0.01")


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    # What a numeric(12, 2) column holds: at most 10 digits before the point and 2 after.
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class Item(ItemCreate):
    id: int
    created_at: datetime


class ItemStore:
    """Items kept in process memory: lost on restart, not shared between workers."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._names: set[str] = set()
        self._ids = itertools.count(1)

    def add(self, name: str, description: str | None, price: Decimal) -> Item | None:
        """The new item, or None when the name is taken."""
        if name in self._names:
            return None
        item = Item(
            id=next(self._ids),
            name=name,
            description=description,
            price=price.quantize(CENT),
            created_at=datetime.now(UTC),
        )
        self._items[item.id] = item
        self._names.add(name)
        return item

    def page(self, offset: int, limit: int) -> list[Item]:
        return list(itertools.islice(self._items.values(), offset, offset + limit))

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    def remove(self, item_id: int) -> bool:
        item = self._items.pop(item_id, None)
        if item is None:
            return False
        self._names.discard(item.name)
        return True


# The lifespan state key of the store: Starlette copies the lifespan's state into every request.
ITEM_STORE = "item_store"


def item_store_state(store: ItemStore) -> dict[str, ItemStore]:
    return {ITEM_STORE: store}


# async: FastAPI runs a plain `def` dependency in its thread pool, a costly hop per request.
async def get_item_store(request: Request) -> ItemStore:
    store: ItemStore = getattr(request.state, ITEM_STORE)
    return store


Store = Annotated[ItemStore, Depends(get_item_store)]
ItemId = Annotated[int, Path(ge=1, le=MAX_INTEGER)]

router = APIRouter(prefix="/items", tags=["items"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "An item with this name exists"}},
)
async def create_item(
    new_item: ItemCreate, items: Store, request: Request, response: Response
) -> Item:
    item = items.add(new_item.name, new_item.description, new_item.price)
    if item is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="An item with this name exists")
    response.headers["Location"] = request.app.url_path_for("get_item", item_id=str(item.id))
    return item


@router.get("")
async def list_items(
    items: Store,
    offset: Annotated[int, Query(ge=0, le=MAX_INTEGER)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[Item]:
    return items.page(offset, limit)


@router.get("/{item_id}", responses={404: {"description": "No item with this id"}})
async def get_item(item_id: ItemId, items: Store) -> Item:
    item = items.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No item with this id"}},
)
async def delete_item(item_id: ItemId, items: Store) -> None:
    if not items.remove(item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
