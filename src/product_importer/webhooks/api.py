"""The webhooks JSON API: endpoints, a test ping, deliveries, redelivery and recovery."""

from flask import Blueprint, jsonify, url_for
from flask_login import current_user

from ..accounts import audit
from ..accounts.auth import requires
from ..accounts.roles import Role
from ..apiutil import (
    json_object,
    json_object_or_none_sent,
    page_count,
    paging,
    query_arg,
    true_or_false,
)
from ..extensions import db
from ..security import refuse_cross_site_requests
from ..timeutil import iso
from . import models, recovery, service

bp = Blueprint("webhooks_api", __name__, url_prefix="/api/webhooks")
bp.before_request(refuse_cross_site_requests)


@bp.get("")
@requires(Role.VIEWER)
def list_webhooks():
    """Return every webhook endpoint."""
    whole_url = current_user.can(Role.ADMIN)
    endpoints = service.list_endpoints(db.session)
    tests = service.last_tests(db.session, endpoint_ids=[e.id for e in endpoints])
    return jsonify(
        items=[e.to_dict(whole_url=whole_url, last_test=tests.get(e.id)) for e in endpoints]
    )


@bp.post("")
@requires(Role.ADMIN)
def create_webhook():
    """Create an endpoint: 201 with its secret, which is shown this once."""
    endpoint = service.create(db.session, fields=json_object("webhook"))
    audit.record(
        db.session, "webhook.created", endpoint.url, id=endpoint.id, events=endpoint.events
    )
    db.session.commit()
    location = url_for("webhooks_api.get_webhook", endpoint_id=endpoint.id)
    created = endpoint.to_dict(with_secret=True, last_test=None)  # a new webhook has had no test
    return jsonify(created), 201, {"Location": location}


@bp.get("/<int:endpoint_id>")
@requires(Role.VIEWER)
def get_webhook(endpoint_id: int):
    """Return one endpoint (without its secret)."""
    endpoint = service.get(db.session, endpoint_id)
    return jsonify(_webhook_json(endpoint, whole_url=current_user.can(Role.ADMIN)))


def _webhook_json(endpoint: models.Endpoint, **options) -> dict:
    """The Webhook JSON of an endpoint (`options` as to_dict takes them), with its last test."""
    return endpoint.to_dict(last_test=service.last_test(db.session, endpoint), **options)


@bp.patch("/<int:endpoint_id>")
@requires(Role.ADMIN)
def update_webhook(endpoint_id: int):
    """Change some of an endpoint's fields."""
    fields = json_object("webhook")
    endpoint, changed = service.update_endpoint(db.session, endpoint_id, fields=fields)
    if changed:  # the fields sent may be the whole webhook, read-only ones and all
        audit.record(db.session, "webhook.updated", endpoint.url, id=endpoint_id, fields=changed)
    db.session.commit()
    return jsonify(_webhook_json(endpoint))


@bp.delete("/<int:endpoint_id>")
@requires(Role.ADMIN)
def delete_webhook(endpoint_id: int):
    """Delete an endpoint and its delivery log: 204."""
    url = service.delete_endpoint(db.session, endpoint_id)
    audit.record(db.session, "webhook.deleted", url, id=endpoint_id)
    db.session.commit()
    return "", 204


@bp.post("/<int:endpoint_id>/rotate-secret")
@requires(Role.ADMIN)
def rotate_secret(endpoint_id: int):
    """Give the endpoint a new secret, shown this once; the old one signs beside it a while."""
    fields = json_object_or_none_sent("rotation")
    endpoint = service.rotate_secret(db.session, endpoint_id, fields=fields)
    until = iso(endpoint.previous_secret_until)
    audit.record(db.session, "webhook.secret_rotated", endpoint.url, id=endpoint_id, until=until)
    db.session.commit()
    return jsonify(_webhook_json(endpoint, with_secret=True))


@bp.post("/<int:endpoint_id>/test")
@requires(Role.ADMIN)
def test_webhook(endpoint_id: int):
    """Send a `ping` and wait for the answer: the one delivery made inside a request."""
    result = service.send_test(db.session, endpoint_id)
    audit.record(db.session, "webhook.tested", f"webhook {endpoint_id}", ok=result["ok"])
    db.session.commit()
    return jsonify(result)


@bp.get("/<int:endpoint_id>/deliveries")
@requires(Role.VIEWER)
def list_deliveries(endpoint_id: int):
    """Return a page of the endpoint's deliveries, newest first, each with its attempt log."""
    page, per_page = _delivery_paging()
    counted = true_or_false("total", default=True)
    found = service.list_deliveries(db.session, endpoint_id, limit=per_page, page=page)
    total = service.deliveries_total(
        db.session,
        endpoint_id=endpoint_id,
        page=page,
        per_page=per_page,
        found=len(found),
        counted=counted,
    )
    return jsonify(
        items=[delivery.to_dict(attempts) for delivery, attempts in found],
        page=page,
        pages=None if total is None else page_count(total, per_page),
        per_page=per_page,
        total=total,
    )


def _delivery_paging() -> tuple[int, int]:
    """`page` and `per_page` of the deliveries list (`limit`, per_page's first name, when
    per_page is left out); raise Invalid naming any out of range."""
    size = "per_page" if query_arg("per_page") is not None else "limit"
    return paging(service.DEFAULT_DELIVERIES, most=service.MAX_DELIVERIES, size=size)


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
@requires(Role.ADMIN)
def redeliver(endpoint_id: int, delivery_id: int):
    """Send a delivery again with the same `webhook-id`: 202 with the delivery to be sent."""
    delivery = service.redeliver(db.session, endpoint_id, delivery_id)
    audit.record(
        db.session, "webhook.redelivered", f"webhook {endpoint_id}", event=delivery.event_id
    )
    db.session.commit()
    return jsonify(delivery.to_dict()), 202


@bp.post("/<int:endpoint_id>/recover")
@requires(Role.ADMIN)
def recover_webhook(endpoint_id: int):
    """Queue again every event whose latest delivery since `since` failed: 202 with how many."""
    since = recovery.parse_since(json_object("recovery"))
    queued = recovery.recover(db.session, endpoint_id, since=since)
    audit.record(
        db.session, "webhook.recovered", f"webhook {endpoint_id}", since=iso(since), queued=queued
    )
    db.session.commit()
    return jsonify(recovery.summary(since, queued)), 202
