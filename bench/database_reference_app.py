"""The database reference of `make bench`: the floor for reading one item with this stack.

A minimal FastAPI app reading the same row as the template's `GET /api/v1/items/{item_id}`
(the `items` table of the rendered postgres backend's first migration) and answering the
same JSON, through the same kind of Pydantic response model, and 404 when the row is missing.
Nothing else: no middleware, no log line, no SQLAlchemy, no transaction.

- The pool is asyncpg's own, made in the lifespan and sized like the template's: as many
  connections kept as `DATABASE_POOL_SIZE`, up to `DATABASE_MAX_OVERFLOW` more under load
  (5 and 5 by default), from the same `POSTGRES_*` variables, with the same connect timeout
  and the same server settings (statement_timeout, application_name). Unlike the template's,
  it waits for a free connection without a time limit (`DATABASE_POOL_TIMEOUT` is not read).
- One prepared statement per connection, from asyncpg's statement cache: `fetchrow` prepares
  the query on a connection's first use (Parse and Describe, once) and afterwards only binds
  and executes it (Bind, Execute, Sync): one round trip per read. A statement from
  `conn.prepare` could not be cached across reads instead: asyncpg invalidates it when its
  connection goes back to the pool.
- The pool's `reset` is a no-op. asyncpg's default sends `SELECT pg_advisory_unlock_all();
  CLOSE ALL; UNLISTEN *; RESET ALL;` on every release, a second round trip; a read that
  leaves no session state behind has nothing to reset (asyncpg still rolls back an open
  transaction, and there is none).

Runs in the rendered "database: no" backend's virtualenv (FastAPI, uvicorn and asyncpg are
its dependencies) under the image's uvicorn command line; not part of the template.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import FastAPI, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

MAX_INTEGER = 2**31 - 1  # PostgreSQL's integer, the id column's type
READ_ITEM = "SELECT id, name, description, price, created_at FROM items WHERE id = $1"


class Item(BaseModel):
    """The template's response model, field for field, so the JSON is the same."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    id: int
    created_at: datetime


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to reset (see the module's docstring)."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, asyncpg.Pool]]:
    environment = os.environ
    pool_size = int(environment.get("DATABASE_POOL_SIZE", "5"))
    statement_timeout_ms = round(float(environment.get("DATABASE_STATEMENT_TIMEOUT", "5")) * 1000)
    async with asyncpg.create_pool(
        host=environment.get("POSTGRES_HOST", "localhost"),
        port=int(environment.get("POSTGRES_PORT", "5432")),
        user=environment.get("POSTGRES_USER", "app"),
        password=environment.get("POSTGRES_PASSWORD", ""),
        database=environment.get("POSTGRES_DB", "app"),
        min_size=pool_size,
        max_size=pool_size + int(environment.get("DATABASE_MAX_OVERFLOW", "5")),
        timeout=float(environment.get("DATABASE_CONNECT_TIMEOUT", "5")),
        server_settings={
            "statement_timeout": str(statement_timeout_ms),
            "application_name": environment.get("SERVICE_NAME", "backend"),
        },
        reset=keep_session,
    ) as pool:
        yield {"pool": pool}  # Starlette hands it to every request (request.state)


app = FastAPI(lifespan=lifespan)


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/items/{item_id}", responses={404: {"description": "No item with this id"}})
async def get_item(item_id: Annotated[int, Path(ge=1, le=MAX_INTEGER)], request: Request) -> Item:
    row = await request.state.pool.fetchrow(READ_ITEM, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Item not found")
    return Item.model_validate(dict(row))
