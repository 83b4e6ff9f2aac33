"""PostgreSQL through SQLAlchemy 2 (async, asyncpg): the engine and its sessions, the models,
one repository per resource, and what the API answers when the database fails."""
