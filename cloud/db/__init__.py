"""The hub's database: SQLAlchemy Core tables, engine set-up, Alembic migrations, data-access functions."""
