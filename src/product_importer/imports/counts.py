"""What a merge reports: its counts, and the steps it says it runs (for the progress bar)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class MergeCounts:
    """Products after in-file duplicates collapse: created + updated + unchanged = distinct."""

    distinct: int
    created: int
    updated: int
    superseded: int = 0  # staged rows whose SKU repeats later in the file (the last one won)
    search_deferred: bool = False  # a search index is built after the commit
    # The change record of the created products: the block of ids they were given, and the
    # time that stamps every product the merge wrote (None for a plan).
    created_ids: tuple[int, int] | None = None
    written_at: datetime | None = None

    @property
    def unchanged(self) -> int:
        return self.distinct - self.created - self.updated


class Steps(Protocol):
    """Where a merge says which step it runs, and which it expects to run next."""

    def start(self, step: str) -> None: ...

    def expect(self, steps: list[tuple[str, int]]) -> None: ...
