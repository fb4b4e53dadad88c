"""Write rejected rows to the job's report as they are found, outside the import transaction.

They are written through their own connection so that the report survives a failed or
cancelled import, and so memory stays bounded however many rows a file gets wrong.
"""

import json
from contextlib import suppress

from sqlalchemy import Engine, delete, update

from .. import database
from .models import ImportJob, RejectedRow

FLUSH_EVERY = 5000
COLUMNS = ("job_id", "line", "sku", "reason", "cells")
rejected_rows = RejectedRow.__table__
jobs = ImportJob.__table__


class RejectionWriter:
    """Buffer rejected rows `(line, sku, reason, cells)` and write them in batches."""

    def __init__(self, engine: Engine, job_id: int):
        self.engine = engine
        self.job_id = job_id
        self.pending: list[tuple] = []
        self._writing = None  # the connection of the write in progress, to interrupt it

    def clear(self, header: tuple[str, ...] | None = None) -> None:
        """Forget rows an earlier attempt reported; keep the file's `header` for the report."""
        self.pending.clear()
        with self.engine.begin() as conn:
            conn.execute(delete(rejected_rows).where(rejected_rows.c.job_id == self.job_id))
            conn.execute(
                update(jobs)
                .where(jobs.c.id == self.job_id)
                .values(source_header=json.dumps(header) if header is not None else None)
            )

    def write(self, rows: list[tuple]) -> None:
        """Add rejected rows; they are written once FLUSH_EVERY have gathered."""
        self.pending.extend(rows)
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows."""
        if not self.pending:
            return
        rows = (
            (self.job_id, line, sku, reason, json.dumps(cells) if cells is not None else None)
            for line, sku, reason, cells in self.pending
        )
        with self.engine.begin() as conn:
            self._writing = conn
            try:
                database.of(conn).write_rows(conn, rejected_rows.name, COLUMNS, rows)
            finally:
                self._writing = None
        self.pending.clear()

    def interrupt(self) -> None:
        """Stop the write in progress, if any, from another thread."""
        conn = self._writing
        if conn is not None:
            with suppress(Exception):  # the write ended meanwhile: nothing to stop
                database.of(conn).interrupt(conn)
