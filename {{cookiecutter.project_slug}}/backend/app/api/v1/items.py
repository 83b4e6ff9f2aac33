"""Items: an in-memory example resource showing the conventions to follow.

Request and response bodies are Pydantic models, so invalid input gets a 422 with the details;
a missing item is a 404; the store comes in as a dependency, so tests and a real database
replace it in one place.
"""

import itertools
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    price: float = Field(ge=0)


class Item(ItemCreate):
    id: int


class ItemStore:
    """Items kept in process memory: lost on restart, not shared between workers."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._ids = itertools.count(1)

    def add(self, new_item: ItemCreate) -> Item:
        item = Item(id=next(self._ids), **new_item.model_dump())
        self._items[item.id] = item
        return item

    def page(self, offset: int, limit: int) -> list[Item]:
        return list(itertools.islice(self._items.values(), offset, offset + limit))

    def get(self, item_id: int) -> Item | None:
        return self._items.get(item_id)

    def remove(self, item_id: int) -> bool:
        return self._items.pop(item_id, None) is not None


# async: FastAPI runs a plain `def` dependency in its thread pool, a costly hop per request.
async def get_item_store(request: Request) -> ItemStore:
    store: ItemStore = request.app.state.item_store
    return store


Store = Annotated[ItemStore, Depends(get_item_store)]

router = APIRouter(prefix="/items", tags=["items"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(new_item: ItemCreate, store: Store) -> Item:
    return store.add(new_item)


@router.get("")
async def list_items(
    store: Store,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[Item]:
    return store.page(offset, limit)


@router.get("/{item_id}", responses={404: {"description": "No item with this id"}})
async def get_item(item_id: int, store: Store) -> Item:
    item = store.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
    return item


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No item with this id"}},
)
async def delete_item(item_id: int, store: Store) -> None:
    if not store.remove(item_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
