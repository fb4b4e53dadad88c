"""Totals the workers push through the database, one row per sample."""

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class MetricTotal(db.Model):
    """The running total of one sample (a counter, or a histogram's bucket, sum or count)."""

    __tablename__ = "metric_totals"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    # the sample's labels as JSON with sorted keys: `{"le":"0.1","outcome":"succeeded"}`
    labels: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
