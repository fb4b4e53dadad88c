"""The webhooks page."""

from flask import Blueprint, render_template

bp = Blueprint("webhooks", __name__, template_folder="templates")


@bp.get("/webhooks")
def webhooks_page():
    """Configure webhook endpoints and see their deliveries."""
    return render_template("webhooks/index.html")
