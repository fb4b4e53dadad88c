"""Why a job failed, for the pages and clients: `error_code` beside `error`.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05

"too_many_invalid" marks a job its invalid-row limit stopped: the pages offer "Import the
valid rows anyway" from it, where they guessed from the counts (a lost worker or a damaged
file has invalid rows too). "binary_file" marks a file that is no CSV: no Retry is offered.
One empty column; the jobs failed so before the release are found by the words of their
error (failures.TooManyInvalid, csv_rows.BINARY_FILE), few rows of a small table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.add_column(sa.Column("error_code", sa.String(32), nullable=True))
    op.execute(
        "UPDATE import_jobs SET error_code = 'too_many_invalid' WHERE status = 'failed' "
        "AND error LIKE '% rows read were invalid, more than the limit of %'"
    )
    op.execute(
        "UPDATE import_jobs SET error_code = 'binary_file' WHERE status = 'failed' "
        "AND error LIKE 'The file is binary, not a CSV%'"
    )


def downgrade():
    with op.batch_alter_table("import_jobs") as batch:
        batch.drop_column("error_code")
