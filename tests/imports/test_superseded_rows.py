"""Rows a later row of the same SKU supersedes, as PostgreSQL staging finds them (by buckets of
SKUs that Python notes while it reads): the last row of each SKU is kept, whatever shares a
bucket, and SKUs outside ASCII are grouped with their ASCII twins."""

import pytest

from product_importer.extensions import db
from product_importer.imports import postgres_stage
from product_importer.imports.postgres_stage import KEPT, PostgresStage

JOB = 987_654_321  # no such job: the plan's kept rows are read and dropped here


class NoSteps:
    """A merge's progress, not followed here."""

    def start(self, step: str) -> None:
        """Ignore the step."""

    def expect(self, steps: list) -> None:
        """Ignore the steps to come."""


def planned(rows: list[tuple[str, str]]) -> tuple[int, list[tuple[int, str, str]]]:
    """Stage `(sku, name)` rows as an import does, plan them; the rows superseded and those kept."""
    with db.engine.connect() as conn:
        stage = PostgresStage(conn, JOB, record_changes=False)
        stage.start()
        stage.write([(line, sku, name, None, None) for line, (sku, name) in enumerate(rows, 2)])
        stage.prepare()
        counts = stage.plan(NoSteps())
        kept = conn.exec_driver_sql(f"SELECT rn, sku, name FROM {KEPT.format(JOB)} ORDER BY rn")
        kept = [tuple(row) for row in kept]
        PostgresStage.discard_plan(conn, JOB)
        conn.commit()
    return counts.superseded, kept


@pytest.fixture
def postgres(app_ctx):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL staging")


def test_the_last_row_of_each_sku_is_kept_when_every_sku_shares_a_few_buckets(
    postgres, monkeypatch
):
    monkeypatch.setattr(postgres_stage, "BUCKETS", 8)  # eight buckets for 60 SKUs
    rows = [(f"sku-{n}", f"first {n}") for n in range(60)]
    rows += [(f"SKU-{n}", f"second {n}") for n in range(0, 60, 3)]
    rows += [(f"Sku-{n}", f"third {n}") for n in range(0, 60, 6)]

    superseded, kept = planned(rows)

    assert superseded == 20 + 10
    last = {}
    for line, (sku, name) in enumerate(rows, 2):
        last[sku.lower()] = (line, sku, name)
    assert kept == sorted(last.values())


@pytest.mark.parametrize("hashed", [postgres_stage.OUTSIDE_ASCII_HASHED, 0], ids=["few", "many"])
def test_a_sku_outside_ascii_and_its_ascii_twin_are_one_sku(postgres, monkeypatch, hashed):
    # The Kelvin sign's lowercase is k: Python puts no such SKU in a bucket, and its twin in
    # ASCII got a bucket of its own with one row. Files with many such rows join every key.
    monkeypatch.setattr(postgres_stage, "OUTSIDE_ASCII_HASHED", hashed)
    rows = [("sku-k", "ascii first"), ("x-1", "alone"), ("SKU-\u212a", "kelvin last")]
    rows += [("y-\u212a", "kelvin first"), ("Y-K", "ascii last")]

    superseded, kept = planned(rows)

    assert superseded == 2
    assert kept == [(3, "x-1", "alone"), (4, "SKU-\u212a", "kelvin last"), (6, "Y-K", "ascii last")]


def test_a_few_repeats_among_many_skus_are_found_in_their_buckets(postgres):
    rows = [(f"sku-{n}", f"name {n}") for n in range(5000)]
    rows += [("SKU-17", "again"), ("Sku-4321", "again"), ("sKU-17", "last")]

    superseded, kept = planned(rows)

    assert superseded == 3
    assert [row for row in kept if row[2] != f"name {row[1][4:]}"] == [
        (5003, "Sku-4321", "again"),
        (5004, "sKU-17", "last"),
    ]
    assert len(kept) == 5000


def test_a_file_without_repeats_keeps_every_row(postgres):
    rows = [(f"sku-{n}", f"name {n}") for n in range(1000)]

    assert planned(rows) == (0, [(line, *row) for line, row in enumerate(rows, 2)])
