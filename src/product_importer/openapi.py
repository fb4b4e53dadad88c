"""The OpenAPI 3 description of the JSON API, served at /api/openapi.json."""

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)


def document() -> dict:
    """Return the OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Product Importer API", "version": "1.0.0"},
        "paths": {},
    }


@bp.get("/api/openapi.json")
def openapi_json():
    """Serve the OpenAPI document."""
    return jsonify(document())
