"""The imports part of the OpenAPI document: `schemas()` and `paths()` to merge in."""

from flask import current_app

from ..apidoc import (
    LINE,
    LOCATION,
    NULLABLE_STAMP,
    STAMP,
    error,
    json_response,
    links_to,
    list_of,
    operation,
    path_id,
    query,
    ref,
    text,
)
from .changes import FIELDS, KINDS, MAX_PER_PAGE
from .csv_rows import KNOWN_COLUMNS, REQUIRED_COLUMNS
from .options import MAX_INVALID_COUNT, MAX_INVALID_PATTERN
from .states import Kind, Phase, Status

FOLLOW_JOB = (
    "get_import",
    "import_events",
    "cancel_import",
    "retry_import",
    "rejected_rows_csv",
    "list_changes",
    "changes_csv",
    "apply_plan",
    "discard_plan",
    "undo_import",
)


def _or_empty(pattern: str) -> str:
    """`pattern` (anchored with ^ and $), or the empty string."""
    return f"^({pattern[1:-1]})?$"


NULLABLE_ID = {"type": "integer", "nullable": True}
MAX_INVALID_TEXT = {
    "type": "string",
    "pattern": MAX_INVALID_PATTERN,
    "description": "Fail the job, before the catalog changes, once more rows than this are "
    "invalid: a count (`100`) or a percentage of the rows read (`1%`)",
}
COLUMNS = {
    "type": "object",
    "properties": {
        name: {
            "type": "string",
            "pattern": LINE,
            "maxLength": 255,
            "nullable": name not in REQUIRED_COLUMNS,
        }
        for name in KNOWN_COLUMNS
    },
    "additionalProperties": False,
    "minProperties": 1,
    "description": "Product field -> the file's header name, for a header that names them "
    'otherwise: {"sku": "Item Code", "name": "Title"}; null for description or active: '
    "the file has none (not even a column of the field's own name, which is ignored)",
}
PLAN = (
    "Read, validate and compare with the catalog without changing it; the job ends `planned`: "
    "apply or discard it"
)
MAX_INVALID_NUMBER = {"type": "integer", "minimum": 0, "maximum": MAX_INVALID_COUNT}


def _max_invalid(text: dict) -> dict:
    """max_invalid as `text` (a schema of MAX_INVALID_TEXT's) or a whole number."""
    return {
        "anyOf": [text, MAX_INVALID_NUMBER],
        "description": MAX_INVALID_TEXT["description"] + "; a count may be a number",
    }


# The options in a JSON body; null is an option not given.
OPTIONS = {
    "plan": {"type": "boolean", "nullable": True, "description": PLAN},
    "max_invalid": _max_invalid({**MAX_INVALID_TEXT, "nullable": True}),
    "columns": {**COLUMNS, "nullable": True},
}
# The options as form fields, which are text; a field left empty is an option not given.
FORM_OPTIONS = {
    "plan": {"type": "boolean", "description": PLAN + " (`true` or `false`)"},
    "max_invalid": _max_invalid({**MAX_INVALID_TEXT, "pattern": _or_empty(MAX_INVALID_PATTERN)}),
    "columns": {"type": "string", "description": "The columns mapping, as a JSON object"},
}


BOM = query(
    "bom",
    {"type": "string", "enum": ["true", "false", ""], "default": "false"},
    "Start the file with a UTF-8 byte order mark, so that Excel reads it as UTF-8 (the import "
    "pages ask for it; an import ignores it)",
)


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
                    "retrying the same file fails the same way, unless with a column mapping",
                },
                "search_index": {
                    "type": "string",
                    "enum": ["refreshing", "ready", None],
                    "nullable": True,
                    "description": "The search indexes this import rebuilds after its commit "
                    "(the trigram indexes of sku, name and description): until they are ready, "
                    "the sku, name, description and q filters answer correctly but slower",
                },
                "rows_per_second": {"type": "number", "nullable": True},
                "eta_seconds": {"type": "number", "nullable": True},
                "error": {"type": "string", "nullable": True},
                "error_code": {
                    "type": "string",
                    "enum": [
                        "too_many_invalid",
                        "binary_file",
                        "line_too_long",
                        "decompressed_too_large",
                        "damaged_gzip",
                        "no_header",
                        None,
                    ],
                    "nullable": True,
                    "description": "A cause a client acts on, beside `error` (for people): "
                    "too_many_invalid when max_invalid stopped it (retry with max_invalid "
                    "'100%' imports its valid rows). The file's bytes failed it, and a retry "
                    "is refused (409, `retry_refusal` says what to do): binary_file (no CSV: "
                    "a workbook, an image), line_too_long (a line past 4 MiB), "
                    "decompressed_too_large (a gzip expanding past the server's limit), "
                    "damaged_gzip (a gzip that cannot be decompressed), no_header (blank lines "
                    "only). Null otherwise (a lost worker, a database error, a cancel: a retry "
                    "may succeed)",
                },
                "retry_refusal": {
                    "type": "string",
                    "nullable": True,
                    "description": "Why a retry of this finished import would be refused (409) "
                    "and what to do instead (the file never arrived whole, was refused, is "
                    "no longer kept, or its bytes failed it: see error_code); null when it can "
                    "be retried, or while it runs. Not in "
                    "webhooks",
                },
                "warnings": {"type": "array", "items": {"type": "string"}},
                "created_at": STAMP,
                "started_at": NULLABLE_STAMP,
                "finished_at": NULLABLE_STAMP,
                "created_by": {
                    "type": "string",
                    "nullable": True,
                    "description": "Who uploaded it; null from the command line",
                },
                "applied_by": {
                    "type": "string",
                    "nullable": True,
                    "description": "Who applied it, when it was a plan: the actor of its "
                    "import.completed or import.failed webhook; null otherwise or from the "
                    "command line",
                },
                "applied_at": {
                    **NULLABLE_STAMP,
                    "description": "When it was applied, when it was a plan; with a null "
                    "applied_by, it was applied from the command line, and its webhook's actor "
                    "is null",
                },
                "kind": {"type": "string", "enum": [kind.value for kind in Kind]},
                "plan": {"type": "boolean", "description": "Whether it is (or was) a plan"},
                "undo_of": {**NULLABLE_ID, "description": "The import an undo job undoes"},
                "undone_by": {**NULLABLE_ID, "description": "The undo job that undid it"},
                "duplicate_of": {
                    **NULLABLE_ID,
                    "description": "An earlier completed import of an identical file",
                },
                "conflicts": {
                    "type": "integer",
                    "description": "Products an undo left alone: changed since the import",
                },
                "deleted": {
                    "type": "integer",
                    "description": "Products an undo deleted (those its import created)",
                },
                "max_invalid": {**MAX_INVALID_TEXT, "nullable": True},
                "columns": {**COLUMNS, "nullable": True},
            },
        },
        "ImportOptions": {
            "type": "object",
            "properties": OPTIONS,
            "additionalProperties": False,
            "description": "Options of a retry; those not given (or null) are the job's own",
        },
        "ChangePage": _change_page(),
    }


def _change_page() -> dict:
    """A page of an import's change record."""
    value = {"nullable": True, "description": "A string, or a boolean for active"}
    change = {
        "type": "object",
        "properties": {"before": value, "after": value},
    }
    item = {
        "type": "object",
        "required": ["sku", "product_id", "kind", "changes"],
        "properties": {
            "sku": {"type": "string"},
            "product_id": {**NULLABLE_ID, "description": "null for a plan's new products"},
            "kind": {"type": "string", "enum": list(KINDS)},
            "changed_since": {
                "type": "boolean",
                "description": "The product was changed or deleted after the import (once "
                "the import is undone: it does not hold what the undo restored): for a created "
                "product the values shown are its values now",
            },
            "changes": {
                "type": "object",
                "properties": {field: change for field in FIELDS},
                "additionalProperties": False,
            },
        },
    }
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total", "pages"],
        "properties": {
            "items": {"type": "array", "items": item},
            **{name: {"type": "integer"} for name in ("page", "per_page", "total", "pages")},
        },
    }


def _import_page() -> dict:
    """`{"items": [ImportJob, ...], "page", "per_page", "total", "pages"}`."""
    listed = list_of("ImportJob")
    numbers = {name: {"type": "integer"} for name in ("page", "per_page", "total", "pages")}
    return {**listed, "properties": {**listed["properties"], **numbers}}


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
    """The imports paths, and the resumable uploads'."""
    return {**_import_paths(), **_upload_paths()}


def _import_paths() -> dict:
    """The /api/imports paths."""
    job = ref("ImportJob")
    upload = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **FORM_OPTIONS,
                    },
                }
            },
            "application/json": {"schema": _from_upload()},
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
                    "400": error("No file field, or the JSON body is not an object"),
                    "404": error(
                        "No such upload of this account (or it expired, or its file is no "
                        "longer kept)"
                    ),
                    "409": error(
                        "The upload's import is waiting or running already, asked with other "
                        "options (asked with the same, that import is answered, 202)"
                    ),
                    "413": error("Over MAX_UPLOAD_BYTES"),
                    "422": error(
                        "Empty, only white space, binary, or not gzip it claims to be; an "
                        "upload refused at its last byte; an option not valid"
                    ),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                    "507": error("Storing it would leave less than MIN_FREE_DISK_BYTES free"),
                },
                requestBody=upload,
            ),
            "get": operation(
                "list_imports",
                "A page of the import jobs, newest first (200 a page unless per_page says)",
                {
                    "200": json_response(_import_page(), "OK"),
                    "422": error("page or per_page not a whole number from 1, per_page over 200"),
                },
                parameters=[
                    query(
                        "page",
                        {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                        "Page number (1: newest)",
                    ),
                    query(
                        "per_page", {"type": "integer", "minimum": 1, "maximum": 200}, "Per page"
                    ),
                ],
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
                "Import the same file again, as a new job, with other options if given (editor)",
                {
                    "202": queued,
                    "400": error("A body that is not a JSON object"),
                    "409": error(
                        "Still running, an undo, or the file is no longer kept, never "
                        "arrived whole (a resumable upload stopped), was refused, or failed "
                        "by its bytes alone (error_code binary_file, line_too_long, "
                        "decompressed_too_large, damaged_gzip, no_header)"
                    ),
                    "422": error("An option not valid"),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                },
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": ref("ImportOptions")}},
                },
            ),
        },
        **_plan_paths(queued),
        "/api/imports/{id}/errors.csv": {
            "parameters": [path_id()],
            "get": operation(
                "rejected_rows_csv",
                "Every rejected row as CSV: line,sku,reason",
                {"200": text("text/csv", "The rejected rows"), "422": error("bom is not valid")},
                parameters=[BOM],
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
                {
                    "200": text("text/csv", "The rejected rows with every column of the file"),
                    "422": error("bom is not valid"),
                },
                parameters=[BOM],
            ),
        },
    }


def _from_upload() -> dict:
    """The JSON body that imports a resumable upload, even one still arriving."""
    return {
        "type": "object",
        "required": ["upload"],
        "additionalProperties": False,
        "properties": {
            "upload": {
                "type": "string",
                "description": "The id of an upload of /api/uploads (the end of its URL)",
            },
            **OPTIONS,
        },
    }


TUS_VERSION = {
    "name": "Tus-Resumable",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "enum": ["1.0.0"]},
    "description": "The tus protocol version: 1.0.0 (else 412)",
}
UPLOAD_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "description": "The upload's id: the last part of the URL its creation gave",
}


def _header(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "schema": schema or {"type": "string"}}


def _bytes_header(name: str, description: str, *, minimum: int = 0, maximum=None) -> dict:
    schema = {"type": "integer", "format": "int64", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _no_content(description: str, headers: dict) -> dict:
    return {"description": description, "headers": headers}


def _upload_paths() -> dict:
    """/api/uploads: the tus 1.0 protocol (core, creation, termination, expiration)."""
    offset = {"Upload-Offset": _header("Bytes received so far", {"type": "integer"})}
    expires = {"Upload-Expires": _header("When an unfinished upload is removed (HTTP date)")}
    protocol = {
        "Tus-Version": _header("1.0.0"),
        "Tus-Extension": _header("creation,termination,expiration"),
        "Tus-Max-Size": _header("MAX_UPLOAD_BYTES", {"type": "integer"}),
    }
    piece = {
        "required": True,
        "content": {
            "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
        },
    }
    wrong_version = error("No Tus-Resumable: 1.0.0 header (Tus-Version names the version)")
    return {
        "/api/uploads": {
            "options": operation(
                "uploads_options",
                "The tus version, extensions and largest upload",
                {"204": _no_content("The protocol's facts", protocol)},
            ),
            "post": operation(
                "create_upload",
                "Start a resumable upload of Upload-Length bytes (editor); Upload-Metadata "
                "may name the file (`filename`)",
                {
                    "201": _no_content(
                        "Created: send its bytes to Location", {**LOCATION, **expires}
                    ),
                    "400": error("No Upload-Length, or Upload-Metadata not base64"),
                    "412": wrong_version,
                    "413": error("Upload-Length is over MAX_UPLOAD_BYTES"),
                    "422": error("Upload-Length is 0: the file is empty"),
                    "507": error("Storing it would leave less than MIN_FREE_DISK_BYTES free"),
                },
                parameters=[
                    TUS_VERSION,
                    _bytes_header(
                        "Upload-Length",
                        "The file's size in bytes, at most MAX_UPLOAD_BYTES (else 413)",
                        minimum=1,
                        maximum=current_app.config["MAX_UPLOAD_BYTES"],
                    ),
                    {
                        "name": "Upload-Metadata",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "`key base64value,...` (tus), each value base64 of UTF-8 "
                        "text (else 400); `filename` names the file",
                    },
                ],
            ),
        },
        "/api/uploads/{id}": {
            "parameters": [UPLOAD_ID, TUS_VERSION],
            "head": operation(
                "upload_offset",
                "How many bytes have arrived (resume from Upload-Offset)",
                {
                    "200": _no_content(
                        "The offset",
                        {**offset, "Upload-Length": _header("The declared size"), **expires},
                    ),
                    "412": wrong_version,
                },
            ),
            "patch": operation(
                "upload_piece",
                "Append bytes at Upload-Offset; the last byte runs the checks of a multipart "
                "upload (empty, binary, gzip)",
                {
                    "204": _no_content("Appended", {**offset, **expires}),
                    "400": error("No Upload-Offset"),
                    "409": error("Upload-Offset is not the offset, or the upload was refused"),
                    "412": wrong_version,
                    "413": error("The piece goes past Upload-Length"),
                    "415": error("Content-Type is not application/offset+octet-stream"),
                    "422": error("The finished file is empty, binary, or not gzip it claims"),
                    "423": error("Another piece of this upload is being received"),
                    "507": error("The rest would leave less than MIN_FREE_DISK_BYTES free"),
                },
                parameters=[_bytes_header("Upload-Offset", "Where this piece starts")],
                requestBody=piece,
            ),
            "delete": operation(
                "terminate_upload",
                "Remove the upload and its bytes (an import already reading it fails)",
                {"204": {"description": "Removed"}, "412": wrong_version},
            ),
        },
    }


def _plan_paths(queued: dict) -> dict:
    """Apply and discard a plan, undo an import, read its change record."""
    job = ref("ImportJob")
    kind = query(
        "kind",
        {"type": "string", "enum": [*KINDS, ""]},
        "Only created or updated; empty (or left out) for both",
    )
    paging = [
        query("page", {"type": "integer", "minimum": 1, "maximum": 999_999_999}, "Page number"),
        query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}, "Per page"),
    ]
    return {
        "/api/imports/{id}/apply": {
            "parameters": [path_id()],
            "post": operation(
                "apply_plan",
                "Apply a plan: the same job runs the import against the catalog as it is (editor)",
                {
                    "202": queued,
                    "409": error("Not a plan waiting, or its file is no longer kept"),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                },
            ),
        },
        "/api/imports/{id}/discard": {
            "parameters": [path_id()],
            "post": operation(
                "discard_plan",
                "Discard a plan (editor)",
                {"200": json_response(job, "Discarded"), "409": error("Not a plan waiting")},
            ),
        },
        "/api/imports/{id}/undo": {
            "parameters": [path_id()],
            "post": operation(
                "undo_import",
                "Undo a completed import of the last IMPORT_UNDO_DAYS, as a new job (editor)",
                {
                    "202": json_response(job, "The undo job, queued", LOCATION),
                    "409": error("Not a completed import, too old, or undone already"),
                    "429": error("The account has MAX_QUEUED_IMPORTS imports unfinished"),
                },
            ),
        },
        "/api/imports/{id}/changes": {
            "parameters": [path_id()],
            "get": operation(
                "list_changes",
                "The products the import (or plan) creates or updates, before and after",
                {
                    "200": json_response(ref("ChangePage"), "A page of changes"),
                    "422": error("A kind, page or per_page not valid"),
                },
                parameters=[kind, *paging],
            ),
        },
        "/api/imports/{id}/changes.csv": {
            "parameters": [path_id()],
            "get": operation(
                "changes_csv",
                "The change record as CSV: kind, product_id, the values after and before",
                {
                    "200": text("text/csv", "The changes"),
                    "422": error("A kind or bom not valid"),
                },
                parameters=[kind, BOM],
            ),
        },
    }
