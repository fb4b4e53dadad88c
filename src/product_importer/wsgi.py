"""WSGI entry point for gunicorn: `gunicorn product_importer.wsgi:app`."""

from . import create_app

app = create_app()
