"""The product catalog table."""

from datetime import datetime

from sqlalchemy import Computed, DateTime, Index, String, Text, func, text, true
from sqlalchemy.orm import Mapped, deferred, mapped_column

from ..extensions import BigId, db
from ..timeutil import iso, utcnow


class Product(db.Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # lower(description), kept by the database (migration 0016): the description filter's
    # index and its recheck read it, so that no row is lowered at each search. Never loaded.
    description_lower: Mapped[str] = deferred(
        mapped_column(Text, Computed("lower(description)", persisted=True))
    )
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )

    __table_args__ = (
        # SKU identity is case-insensitive; the import merges on this expression too.
        Index("uq_products_lower_sku", func.lower(sku), unique=True),
        Index("ix_products_updated_at_id", updated_at, id),
        Index("ix_products_lower_name_id", func.lower(name), id),
        Index(
            "ix_products_inactive_updated_at_id",
            updated_at,
            id,
            postgresql_where=text("NOT active"),
            sqlite_where=text("NOT active"),
        ),
        # PostgreSQL also has trigram indexes on sku and name (migration 0003) and on
        # description_lower (0006, 0016).
        # SQLite never gives a deleted product's id again (migration 0020).
        {"sqlite_autoincrement": True},
    )

    def to_dict(self) -> dict:
        """Return the Product JSON of SPEC."""
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "active": self.active,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
