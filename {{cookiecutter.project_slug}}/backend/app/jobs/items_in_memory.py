"""The items' jobs, on the same store as the API: the worker's own, in its process memory.

Import many items at once: the API answers 202 at once, a worker adds them. The in-memory
store is per process, so the API does not see what the worker added (a database, the
`database=postgres` answer, is shared); the job's report says what it did. Delivered at least
once, a job must do no harm when it runs twice: names are unique, so an item a first run
added is skipped by the second, never added twice.
"""

from pydantic import BaseModel
from taskiq import AsyncBroker

from app.api.v1.items import ItemCreate, ItemStore
from app.jobs.names import IMPORT_ITEMS


class ImportReport(BaseModel):
    created: int
    # The names already taken (by an earlier run of this job too), so not added.
    skipped: list[str]


def register_item_jobs(broker: AsyncBroker, store: ItemStore) -> None:
    async def import_items(items: list[ItemCreate]) -> ImportReport:
        created, skipped = 0, []
        for item in items:
            if store.add(item.name, item.description, item.price) is None:
                skipped.append(item.name)
            else:
                created += 1
        return ImportReport(created=created, skipped=skipped)

    broker.register_task(import_items, task_name=IMPORT_ITEMS)
