"""The products page."""

from flask import Blueprint, render_template

bp = Blueprint("products", __name__, template_folder="templates")


@bp.get("/products")
def products_page():
    """Browse, filter and edit products."""
    return render_template("products/index.html")
