"""The imports part of the OpenAPI document: `schemas()` and `paths()` to merge in."""

from ..apidoc import (
    LOCATION,
    NULLABLE_STAMP,
    STAMP,
    error,
    json_response,
    links_to,
    list_of,
    operation,
    path_id,
    ref,
    text,
)
from .states import Phase, Status

FOLLOW_JOB = ("get_import", "import_events", "cancel_import", "retry_import", "rejected_rows_csv")


def schemas() -> dict:
    """The ImportJob schema."""
    counts = ("bytes_total", "bytes_processed", "rows_processed", "rows_invalid")
    results = ("created", "updated", "unchanged")
    return {
        "ImportJob": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "filename": {"type": "string"},
                "status": {"type": "string", "enum": [status.value for status in Status]},
                "phase": {
                    "type": "string",
                    "enum": [phase.value for phase in Phase],
                    "nullable": True,
                },
                "message": {"type": "string", "description": "For people: 'Parsing CSV', ..."},
                "percent": {"type": "number", "minimum": 0, "maximum": 100},
                **{name: {"type": "integer"} for name in counts},
                **{
                    name: {"type": "integer", "description": "Products, after in-file duplicates"}
                    for name in results
                },
                "rows_superseded": {
                    "type": "integer",
                    "description": "Valid rows whose SKU repeats later in the file (the last won)",
                },
                "summary": {
                    "type": "string",
                    "nullable": True,
                    "description": "For people, once completed: '466,883 created, 0 updated, "
                    "0 unchanged, 0 rejected. 33,117 rows repeated an earlier SKU; the last one "
                    "was kept.'",
                },
                "header": {
                    "type": "array",
                    "items": {"type": "string"},
                    "nullable": True,
                    "description": "The file's header when it is why the job failed (a "
                    "required column missing, a column named twice; [] for no header): "
                    "retrying the same file fails the same way",
                },
                "search_index": {
                    "type": "string",
                    "enum": ["refreshing", "ready", None],
                    "nullable": True,
                    "description": "A search index this import rebuilds after its commit: until "
                    "it is ready, description and q filters answer correctly but slower",
                },
                "rows_per_second": {"type": "number", "nullable": True},
                "eta_seconds": {"type": "number", "nullable": True},
                "error": {"type": "string", "nullable": True},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "created_at": STAMP,
                "started_at": NULLABLE_STAMP,
                "finished_at": NULLABLE_STAMP,
                "created_by": {
                    "type": "string",
                    "nullable": True,
                    "description": "Who uploaded it; null from the command line",
                },
            },
        },
    }


def _event_stream() -> dict:
    """Server-sent events, each `progress` or `done` with the ImportJob as JSON data."""
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string", "enum": ["progress", "done"]},
            "data": {"type": "string", "description": "The ImportJob, as JSON"},
        },
    }
    return {
        "description": "The event stream",
        "content": {"text/event-stream": {"schema": event}},
    }


def paths() -> dict:
    """The imports paths."""
    job = ref("ImportJob")
    upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
    queued = json_response(job, "Queued", LOCATION)
    queued["links"] = links_to(*FOLLOW_JOB)
    return {
        "/api/imports": {
            "post": operation(
                "upload_import",
                "Upload a CSV (or .csv.gz) and queue its import (editor)",
                {
                    "202": queued,
                    "400": error("No file field"),
                    "413": error("Over MAX_UPLOAD_BYTES"),
                    "422": error("Empty, only white space, binary, or not gzip it claims to be"),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                    "507": error("Storing it would leave less than MIN_FREE_DISK_BYTES free"),
                },
                requestBody=upload,
            ),
            "get": operation(
                "list_imports",
                "Import jobs, newest first",
                {"200": json_response(list_of("ImportJob"), "OK")},
            ),
        },
        "/api/imports/{id}": {
            "parameters": [path_id()],
            "get": operation("get_import", "One import job", {"200": json_response(job, "OK")}),
        },
        "/api/imports/{id}/events": {
            "parameters": [path_id()],
            "get": operation(
                "import_events",
                "Progress as server-sent events: `progress` about once a second while the job "
                "changes, then `done`. A stream still open after EVENT_STREAM_SECONDS ends "
                "without `done`: reconnect",
                {
                    "200": _event_stream(),
                    "503": error("Too many streams open: poll GET /api/imports/{id} instead"),
                },
            ),
        },
        "/api/imports/{id}/cancel": {
            "parameters": [path_id()],
            "post": operation(
                "cancel_import",
                "Cancel a queued or running import (editor)",
                {
                    "202": json_response(job, "Cancelled, or asked to stop"),
                    "409": error("Already finished"),
                },
            ),
        },
        "/api/imports/{id}/retry": {
            "parameters": [path_id()],
            "post": operation(
                "retry_import",
                "Import the same file again, as a new job (editor)",
                {
                    "202": queued,
                    "409": error("Still running, or the file is no longer kept"),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                },
            ),
        },
        "/api/imports/{id}/errors.csv": {
            "parameters": [path_id()],
            "get": operation(
                "rejected_rows_csv",
                "Every rejected row as CSV: line,sku,reason",
                {"200": text("text/csv", "The rejected rows")},
            ),
        },
        "/api/imports/{id}/rejected.csv": {
            "parameters": [path_id()],
            "get": operation(
                "rejected_rows_file",
                "The rejected rows as the file had them, to fix and import again: `line` and "
                "`reason`, then every column of the file's header with each row's cells as "
                "they were (an import ignores the two added columns). Cells a spreadsheet would "
                "run as a formula get a `'` in front, which an import drops again.",
                {"200": text("text/csv", "The rejected rows with every column of the file")},
            ),
        },
    }
