"""The products JSON API: list, create, get, change, delete, delete all, CSV export."""

import csv
import io

from flask import Blueprint, Response, jsonify, request, stream_with_context, url_for

from ..errors import BadRequest, Invalid
from ..extensions import db
from ..security import refuse_cross_site_requests
from . import service

bp = Blueprint("products_api", __name__, url_prefix="/api/products")
bp.before_request(refuse_cross_site_requests)

EXPORT_FLUSH_ROWS = 2000


def _whole_number(name: str, default: int) -> int:
    value = request.args.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise Invalid(f"{name} must be a whole number.", details={name: "A whole number."})
    if len(value) > 9:
        raise Invalid(f"{name} is out of range.", details={name: "Too large."})
    return int(value)


def _fields() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("Send the product as a JSON object.")
    return body


@bp.get("")
def list_products():
    """Return one page of the products that match the filters, with the total."""
    page = service.list_products(
        db.session,
        filters=service.parse_filters(request.args),
        sort=service.parse_sort(request.args.get("sort")),
        page=_whole_number("page", 1),
        per_page=_whole_number("per_page", service.DEFAULT_PER_PAGE),
    )
    return jsonify(page.to_dict())


@bp.post("")
def create_product():
    """Create a product: 201; 409 when its SKU exists in any case; 422 naming bad fields."""
    product = service.create(db.session, fields=_fields())
    db.session.commit()
    location = url_for("products_api.get_product", product_id=product.id)
    return jsonify(product.to_dict()), 201, {"Location": location}


@bp.get("/<int:product_id>")
def get_product(product_id: int):
    """Return one product."""
    return jsonify(service.get(db.session, product_id).to_dict())


@bp.patch("/<int:product_id>")
def update_product(product_id: int):
    """Change the fields given: 200; 409 when another product has the SKU."""
    product = service.update(db.session, product_id, fields=_fields())
    db.session.commit()
    return jsonify(product.to_dict())


@bp.delete("/<int:product_id>")
def delete_product(product_id: int):
    """Delete one product: 204."""
    service.delete_product(db.session, product_id)
    db.session.commit()
    return "", 204


@bp.delete("")
def delete_all_products():
    """Delete every product (`?confirm=true`): 200 with the number deleted."""
    if request.args.get("confirm") != "true":
        raise BadRequest("Deleting every product cannot be undone: add ?confirm=true to do it.")
    deleted = service.delete_all(db.session)
    db.session.commit()
    return jsonify(deleted=deleted)


@bp.get("/export.csv")
def export_csv():
    """Stream the products that match the filters as CSV that imports back unchanged."""
    rows = service.export_rows(
        db.session,
        filters=service.parse_filters(request.args),
        sort=service.parse_sort(request.args.get("sort")),
    )
    headers = {"Content-Disposition": 'attachment; filename="products.csv"'}
    return Response(stream_with_context(_csv(rows)), mimetype="text/csv", headers=headers)


def _csv(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(service.EXPORT_COLUMNS)
    for count, (sku, name, description, active) in enumerate(rows, start=1):
        writer.writerow((sku, name, description, "true" if active else "false"))
        if count % EXPORT_FLUSH_ROWS == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
