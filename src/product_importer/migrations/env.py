"""Alembic environment: migrate the database of the current Flask app."""

from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db


def run_migrations_online() -> None:
    """Run every pending migration on the app's engine, one transaction each."""
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            transaction_per_migration=True,
            **current_app.extensions["migrate"].configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
