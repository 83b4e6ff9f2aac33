"""The tables, as SQLAlchemy 2 typed models. Alembic compares these with the migrations
(`alembic check`), so a change here comes with a revision (`make revision m="..."`)."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, Identity, MetaData, Numeric, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names fixed by convention, so migrations name them the same everywhere.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# PostgreSQL's `integer`: ids and offsets a client sends are bounded by it, so an out-of-range
# number is a 422, never a failing statement.
MAX_INTEGER = 2**31 - 1

# The PostgreSQL advisory lock a migration run holds (migrations/env.py): a second run started
# meanwhile (two deploys at once, a retried Job beside its first pod) waits for it, then finds
# the schema migrated.
MIGRATION_LOCK_KEY = 7_460_146_521


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Item(Base):
    __tablename__ = "items"
    # The INSERT returns the server's defaults (created_at) instead of a second query.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000))
    # Money is exact: numeric(12, 2), a Decimal in Python, never a float.
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
