"""Alembic environment: migrate the database of the current Flask app."""

from alembic import context
from flask import current_app

from product_importer import database

db = current_app.extensions["migrate"].db


def run_migrations_online() -> None:
    """Run every pending migration, one transaction each, on a connection of its own without
    the server's timeouts (`database.migration_engine`)."""
    engine = database.migration_engine(current_app.config, db.engine)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=db.metadata,
                transaction_per_migration=True,
                **current_app.extensions["migrate"].configure_args,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if engine is not db.engine:
            engine.dispose()


run_migrations_online()
