"""Item imports: many items added by a background job (`app/jobs/items.py`).

The request is checked at once (a 422 for any bad item); the answer is a 202 with the job's
id and a `Location` where its state and report will be.
"""

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from app.api.v1.items import ItemCreate
from app.jobs.names import IMPORT_ITEMS
from app.jobs.queue import Job, Jobs
from app.jobs.states import JobState


class ItemImport(BaseModel):
    items: list[ItemCreate] = Field(min_length=1, max_length=100)


router = APIRouter(prefix="/items", tags=["items"])


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    responses={503: {"description": "The job queue did not answer"}},
)
async def import_items(
    new_items: ItemImport, jobs: Jobs, request: Request, response: Response
) -> Job:
    job_id = await jobs.send(
        IMPORT_ITEMS, items=[item.model_dump(mode="json") for item in new_items.items]
    )
    response.headers["Location"] = request.app.url_path_for("get_job", job_id=job_id)
    return Job(id=job_id, status=JobState.QUEUED, attempt=1)
