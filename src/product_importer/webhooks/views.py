"""The webhooks page."""

from flask import Blueprint, render_template

from ..accounts.auth import requires
from ..accounts.roles import Role
from .delivery import DELIVERY_RETENTION
from .events import EVENT_TYPES

bp = Blueprint("webhooks", __name__, template_folder="templates")


@bp.get("/webhooks")
@requires(Role.VIEWER)
def webhooks_page():
    """Configure webhook endpoints and see their deliveries."""
    return render_template(
        "webhooks/index.html", event_types=EVENT_TYPES, recover_days=DELIVERY_RETENTION.days
    )
