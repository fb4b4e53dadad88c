"""The products JSON API."""

from flask import Blueprint

from ..security import refuse_cross_site_requests

bp = Blueprint("products_api", __name__, url_prefix="/api/products")
bp.before_request(refuse_cross_site_requests)
