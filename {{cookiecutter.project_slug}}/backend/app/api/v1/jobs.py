"""Jobs: the state and result of a background job, by the id its 202 gave."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from app.jobs.queue import Job, Jobs

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    responses={
        404: {"description": "No job with this id, or its result has expired"},
        503: {"description": "The job queue did not answer"},
    },
)
async def get_job(job_id: JobId, jobs: Jobs) -> Job:
    job = await jobs.job(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Job not found")
    return job
