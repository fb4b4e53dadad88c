"""The jobs a file's bytes failed before the release get their `error_code`.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05

A line too long, a gzip expanding past the limit or damaged, a file with no header row: a
retry reads the same bytes and fails the same way, so the API refuses it (409) and the pages
offer no Retry, by the job's `error_code`. The jobs failed so before the release are found by
the words of their error (failures.py, csv_rows.py, runner.py wrote them unchanged since
0001), few rows of a small table. No column changes: the downgrade clears these codes.
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# error_code -> the beginning of the error the import wrote for it
MARKED = {
    "line_too_long": "A line is longer than % bytes: this does not look like a CSV file.%",
    "decompressed_too_large": "The compressed file expands to more than %",
    "damaged_gzip": "The compressed file is damaged or incomplete (%",
    "no_header": "The file holds no header row.%",
}


def upgrade():
    for code, words in MARKED.items():
        op.execute(
            f"UPDATE import_jobs SET error_code = '{code}' WHERE status = 'failed' "
            f"AND error_code IS NULL AND error LIKE '{words}'"
        )


def downgrade():
    codes = ", ".join(f"'{code}'" for code in MARKED)
    op.execute(f"UPDATE import_jobs SET error_code = NULL WHERE error_code IN ({codes})")
