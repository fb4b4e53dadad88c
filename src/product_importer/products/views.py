"""The products page: the table is filled by static/products.js from the products API."""

from flask import Blueprint, render_template, request

from ..accounts.auth import requires
from ..accounts.roles import Role

bp = Blueprint("products", __name__, template_folder="templates")

TEXT_FILTERS = ("sku", "name", "description")
PER_PAGE_CHOICES = (25, 50, 100, 200)


@bp.get("/products")
@requires(Role.VIEWER)
def products_page():
    """Browse, filter and edit products; the filters in the address fill the form."""
    filters = {name: request.args.get(name, "").strip() for name in TEXT_FILTERS}
    active = request.args.get("active", "")
    filters["active"] = active if active in ("true", "false") else ""
    return render_template(
        "products/index.html", filters=filters, per_page_choices=PER_PAGE_CHOICES
    )
