"""Alembic environment: migrate the database of the current Flask app."""

from alembic import context
from flask import current_app

from product_importer import database

db = current_app.extensions["migrate"].db


def run_migrations_online() -> None:
    """Run every pending migration, one transaction each, on a connection of its own without
    the server's timeouts (`database.migration_connection`)."""
    with database.migration_connection(current_app.config, db.engine) as connection:
        # another process's migrations first: Alembic then reads the version they left
        database.wait_to_migrate(connection)
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            transaction_per_migration=True,
            **current_app.extensions["migrate"].configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
