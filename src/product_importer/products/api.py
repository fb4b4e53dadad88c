"""The products JSON API: list, create, get, change, delete, delete all, CSV export."""

from flask import Blueprint, jsonify, request, url_for

from ..accounts import audit
from ..accounts.auth import requires
from ..accounts.roles import Role
from ..apiutil import csv_download, json_object, true_or_false, whole_number
from ..errors import BadRequest
from ..extensions import db
from ..security import refuse_cross_site_requests
from . import service

bp = Blueprint("products_api", __name__, url_prefix="/api/products")
bp.before_request(refuse_cross_site_requests)


@bp.get("")
@requires(Role.VIEWER)
def list_products():
    """Return one page of the products that match the filters, with the total."""
    page = service.list_products(
        db.session,
        filters=service.parse_filters(request.args),
        sort=service.parse_sort(request.args.get("sort")),
        page=whole_number("page", 1, most=service.MAX_PAGE),
        per_page=whole_number("per_page", service.DEFAULT_PER_PAGE, most=service.MAX_PER_PAGE),
    )
    return jsonify(page.to_dict())


@bp.post("")
@requires(Role.EDITOR)
def create_product():
    """Create a product: 201; 409 when its SKU exists in any case; 422 naming bad fields."""
    product = service.create(db.session, fields=json_object("product"))
    audit.record(db.session, "product.created", product.sku, id=product.id)
    db.session.commit()
    location = url_for("products_api.get_product", product_id=product.id)
    return _with_etag(product, 201, Location=location)


@bp.get("/<int:product_id>")
@requires(Role.VIEWER)
def get_product(product_id: int):
    """Return one product, with its ETag (for If-Match when changing it)."""
    return _with_etag(service.get(db.session, product_id))


@bp.patch("/<int:product_id>")
@requires(Role.EDITOR)
def update_product(product_id: int):
    """Change the fields given: 200; 409 when another product has the SKU; 412 when If-Match
    names a version that is gone (someone else changed it meanwhile)."""
    fields = json_object("product")
    product, changed = service.update(db.session, product_id, fields=fields, if_match=_if_match())
    if changed:  # the fields sent may be the whole product, read-only ones and all
        audit.record(db.session, "product.updated", product.sku, id=product.id, fields=changed)
    db.session.commit()
    return _with_etag(product)


@bp.delete("/<int:product_id>")
@requires(Role.EDITOR)
def delete_product(product_id: int):
    """Delete one product: 204; 412 when If-Match names a version that is gone."""
    deleted = service.delete_product(db.session, product_id, if_match=_if_match())
    audit.record(db.session, "product.deleted", deleted["sku"], id=product_id)
    db.session.commit()
    return "", 204


def _if_match():
    """The versions If-Match accepts (`*` is any), or None when the request sent none.

    Weak tags count too: a proxy that compresses an answer marks its ETag weak (W/"..."), and
    the tag versions the product, not the bytes that carried it.
    """
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match
    return tags if tags.star_tag else tags.as_set(include_weak=True)


def _with_etag(product, status: int = 200, **headers):
    """The product's JSON answer, with its version as ETag."""
    response = jsonify(product.to_dict())
    response.status_code = status
    response.headers.update(headers)
    response.set_etag(service.version(product))
    return response


@bp.delete("")
@requires(Role.ADMIN)
def delete_all_products():
    """Delete every product (`?confirm=true`): 200 with the number deleted."""
    if request.args.get("confirm") != "true":
        raise BadRequest("Deleting every product cannot be undone: add ?confirm=true to do it.")
    others = sorted(set(request.args) - {"confirm"})
    if others:  # a filter, as the list and the export take, would be ignored: all would go
        raise BadRequest(
            f"This deletes every product; it takes no {', '.join(others)}. To delete some, "
            "delete each (DELETE /api/products/<id>); to delete all, send only ?confirm=true.",
            details={name: "Not taken here." for name in others},
        )
    deleted = service.delete_all(db.session)
    audit.record(db.session, "products.deleted_all", "every product", deleted=deleted)
    db.session.commit()
    return jsonify(deleted=deleted)


@bp.get("/export.csv")
@requires(Role.VIEWER)
def export_products():
    """Stream the products that match the filters as CSV that imports back unchanged
    (`bom=true`: with a byte order mark first, for Excel)."""
    bom = true_or_false("bom")
    rows = service.export_rows(
        db.session,
        filters=service.parse_filters(request.args),
        sort=service.parse_sort(request.args.get("sort")),
    )
    lines = (
        (sku, name, description, "true" if active else "false")
        for sku, name, description, active in rows
    )
    return csv_download(lines, service.EXPORT_COLUMNS, "products.csv", bom=bom)
