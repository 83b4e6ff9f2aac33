"""The items' queries, in two small classes: the reads, on a session without a transaction
(`ReadSession`), and the writes, each committed in its own transaction (`Session`)."""

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import read_retried_once
from app.db.models import Item


class ItemReader:
    """Reads, one statement each: run again once if their connection was found closed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page(self, offset: int, limit: int) -> Sequence[Item]:
        statement = select(Item).order_by(Item.id).offset(offset).limit(limit)
        items = await read_retried_once(self._session, lambda: self._session.scalars(statement))
        return items.all()

    async def get(self, item_id: int) -> Item | None:
        return await read_retried_once(self._session, lambda: self._session.get(Item, item_id))


class ItemRepository:
    """Writes, each committed before it returns."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, name: str, description: str | None, price: Decimal) -> Item | None:
        """The new item, or None when an item with this name exists (names are unique).

        One statement, safe under concurrency: the unique index decides, not a prior SELECT.
        """
        statement = (
            insert(Item)
            .values(name=name, description=description, price=price)
            .on_conflict_do_nothing(index_elements=[Item.name])
            .returning(Item)
        )
        item = await self._session.scalar(statement)
        await self._session.commit()
        return item

    async def remove(self, item_id: int) -> bool:
        statement = delete(Item).where(Item.id == item_id).returning(Item.id)
        removed = await self._session.scalar(statement)
        await self._session.commit()
        return removed is not None
