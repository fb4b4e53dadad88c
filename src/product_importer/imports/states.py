"""The states and phases of an import job. Pure: the parser, the runner and the API share them."""

import enum


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset(
    {Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED}
)
SUCCEEDED = frozenset({Status.COMPLETED, Status.COMPLETED_WITH_ERRORS})


class Phase(enum.StrEnum):
    READING = "reading"
    APPLYING = "applying"
