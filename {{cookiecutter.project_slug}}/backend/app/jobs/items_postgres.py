"""The items' jobs, on the same repository as the API.

Import many items at once: the API answers 202 at once, a worker adds them. Delivered at
least once, a job must do no harm when it runs twice: names are unique, so an item a first
run added is skipped by the second, never added twice.
"""

from pydantic import BaseModel
from taskiq import AsyncBroker

from app.api.v1.items import ItemCreate
from app.db.engine import Database
from app.db.items import ItemRepository
from app.jobs.names import IMPORT_ITEMS


class ImportReport(BaseModel):
    created: int
    # The names already taken (by an earlier run of this job too), so not added.
    skipped: list[str]


def register_item_jobs(broker: AsyncBroker, database: Database) -> None:
    async def import_items(items: list[ItemCreate]) -> ImportReport:
        created, skipped = 0, []
        async with database.session() as session:
            repository = ItemRepository(session)
            for item in items:
                if await repository.add(item.name, item.description, item.price) is None:
                    skipped.append(item.name)
                else:
                    created += 1
        return ImportReport(created=created, skipped=skipped)

    broker.register_task(import_items, task_name=IMPORT_ITEMS)
