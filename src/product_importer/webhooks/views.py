"""The webhooks page."""

from flask import Blueprint, render_template

from .events import EVENT_TYPES

bp = Blueprint("webhooks", __name__, template_folder="templates")


@bp.get("/webhooks")
def webhooks_page():
    """Configure webhook endpoints and see their deliveries."""
    return render_template("webhooks/index.html", event_types=EVENT_TYPES)
