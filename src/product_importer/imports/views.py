"""Import pages: upload with live progress, and the import history."""

from flask import Blueprint, render_template

bp = Blueprint("imports", __name__, template_folder="templates")


@bp.get("/")
def upload_page():
    """Upload a CSV and watch its import."""
    return render_template("imports/upload.html")


@bp.get("/imports")
def history_page():
    """The history of imports."""
    return render_template("imports/history.html")
