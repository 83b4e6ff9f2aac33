"""The items repository: every query the API makes about items, in one small class."""

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Item


class ItemRepository:
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

    async def page(self, offset: int, limit: int) -> Sequence[Item]:
        statement = select(Item).order_by(Item.id).offset(offset).limit(limit)
        return (await self._session.scalars(statement)).all()

    async def get(self, item_id: int) -> Item | None:
        return await self._session.get(Item, item_id)

    async def remove(self, item_id: int) -> bool:
        statement = delete(Item).where(Item.id == item_id).returning(Item.id)
        removed = await self._session.scalar(statement)
        await self._session.commit()
        return removed is not None
