"""The webhooks JSON API."""

from flask import Blueprint

from ..security import refuse_cross_site_requests

bp = Blueprint("webhooks_api", __name__, url_prefix="/api/webhooks")
bp.before_request(refuse_cross_site_requests)
