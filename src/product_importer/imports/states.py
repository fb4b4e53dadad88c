"""The states and phases of an import job. Pure: the parser, the runner and the API share them."""

import enum


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PLANNED = "planned"  # a plan: read and compared, waiting to be applied or discarded
    DISCARDED = "discarded"


# No worker runs these: a planned job waits for a person, not for the queue.
# The exit code of an import command stopped by Ctrl-C, local or remote (128 + SIGINT).
INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)

FINISHED = frozenset(
    {
        Status.COMPLETED,
        Status.COMPLETED_WITH_ERRORS,
        Status.FAILED,
        Status.CANCELLED,
        Status.PLANNED,
        Status.DISCARDED,
    }
)
SUCCEEDED = frozenset({Status.COMPLETED, Status.COMPLETED_WITH_ERRORS})


class Kind(enum.StrEnum):
    IMPORT = "import"
    UNDO = "undo"


class Phase(enum.StrEnum):
    READING = "reading"
    APPLYING = "applying"


# How a plan's change record is kept: apart from the record of the run that applies it, so
# applying never has to delete it first (the workers' upkeep removes it later).
CHANGE_KINDS = ("created", "updated")
PLANNED_KINDS = {"created": "pcreated", "updated": "pupdated"}
