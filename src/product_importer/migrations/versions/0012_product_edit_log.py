"""A log of small edits, so that exact filtered totals are carried over edits, not recounted.

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-02

The catalog version moves on with every statement that changes products (0003, 0004), so a
filtered total kept per version was counted again after every edit: with a few people editing,
every filter request scanned its matches (`products/totals.py`). Now a row trigger logs each
changed product in `product_edit_log`, its row before (sign -1) and after (sign +1), under the
version its statement made; the total now is a total kept at version v0 plus the signs of the
rows logged after v0 that match its filter.

- The version moves in a BEFORE STATEMENT trigger: the statement takes the version row's lock
  before it changes a product, so its row triggers read the version it commits with (a
  concurrent edit waits for the lock and gets the next version).
- Imports, undo and delete-all change many products: they say so with
  `SET LOCAL product_importer.bulk_change = 'on'` (TRUNCATE needs nothing), the row trigger's
  WHEN skips them, and the version is marked `recount_from`: totals kept before it are counted
  again. A bump made outside the triggers on products (the bulk import's switch) is marked
  too, by a trigger on the version itself; a path that forgets the setting logs every row:
  slower, still exact.
- The log is a logged table: a crash keeps it in step with the version.
- A kept total says at which version it was last counted (`counted_at`): how far it was
  carried, for people and tests.
"""

from alembic import op

revision = "0012"
down_revision = "0013"
branch_labels = None
depends_on = None

BULK_SETTING = "product_importer.bulk_change"
BUMP_VERSION = f"""
CREATE OR REPLACE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR current_setting('{BULK_SETTING}', true) = 'on' THEN
        UPDATE products_version SET version = version + 1, recount_from = version + 1;
    ELSE
        UPDATE products_version SET version = version + 1;
    END IF;
    RETURN NULL;
END $$
"""
OLD_BUMP_VERSION = """
CREATE OR REPLACE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products_version SET version = version + 1;
    RETURN NULL;
END $$
"""
# Depth 1: the UPDATE came from a statement of its own, not from the triggers on products,
# so nothing logged what it stands for.
GUARD_VERSION = """
CREATE FUNCTION products_version_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <> OLD.version AND pg_trigger_depth() < 2 THEN
        NEW.recount_from := greatest(NEW.version, NEW.recount_from);
    END IF;
    RETURN NEW;
END $$
"""
LOG_EDIT = """
CREATE FUNCTION products_log_edit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    made bigint := (SELECT version FROM products_version);  -- by this statement
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.sku, OLD.name, OLD.description, OLD.active)
        IS NOT DISTINCT FROM (NEW.sku, NEW.name, NEW.description, NEW.active) THEN
        RETURN NULL;  -- no filter can tell the difference
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO product_edit_log
        VALUES (made, -1, OLD.id, OLD.sku, OLD.name, OLD.description, OLD.active);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO product_edit_log
        VALUES (made, 1, NEW.id, NEW.sku, NEW.name, NEW.description, NEW.active);
    END IF;
    RETURN NULL;
END $$
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE products_version ADD COLUMN recount_from bigint")
    op.execute("UPDATE products_version SET recount_from = version")  # nothing logged yet
    op.execute("ALTER TABLE products_version ALTER COLUMN recount_from SET NOT NULL")
    op.execute(
        "CREATE TABLE product_edit_log (version bigint NOT NULL, sign smallint NOT NULL, "
        "product_id bigint NOT NULL, sku text NOT NULL, name text NOT NULL, "
        "description text NOT NULL, active boolean NOT NULL)"
    )
    op.execute("CREATE INDEX ix_product_edit_log_version ON product_edit_log (version)")
    op.execute("ALTER TABLE product_list_totals ADD COLUMN counted_at bigint")
    op.execute(BUMP_VERSION)
    op.execute(GUARD_VERSION)
    op.execute(
        "CREATE TRIGGER products_version_guard BEFORE UPDATE ON products_version "
        "FOR EACH ROW EXECUTE FUNCTION products_version_guard()"
    )
    op.execute(LOG_EDIT)
    _retrigger("BEFORE")
    op.execute(
        "CREATE TRIGGER products_edit_log AFTER INSERT OR UPDATE OR DELETE ON products "
        f"FOR EACH ROW WHEN (current_setting('{BULK_SETTING}', true) IS DISTINCT FROM 'on') "
        "EXECUTE FUNCTION products_log_edit()"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER products_edit_log ON products")
    _retrigger("AFTER")
    op.execute("DROP FUNCTION products_log_edit()")
    op.execute("DROP TRIGGER products_version_guard ON products_version")
    op.execute("DROP FUNCTION products_version_guard()")
    op.execute(OLD_BUMP_VERSION)
    op.execute("ALTER TABLE product_list_totals DROP COLUMN counted_at")
    op.execute("DROP TABLE product_edit_log")
    op.execute("ALTER TABLE products_version DROP COLUMN recount_from")


def _retrigger(when: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS products_version_rows ON products")
    op.execute(
        f"CREATE TRIGGER products_version_rows {when} INSERT OR UPDATE OR DELETE ON products "
        "FOR EACH STATEMENT EXECUTE FUNCTION products_bump_version()"
    )
