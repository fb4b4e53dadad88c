"""Celery tasks for imports: thin wrappers around the service."""

from celery import shared_task

from . import service


@shared_task(name="product_importer.imports.drain_imports")
def drain_imports() -> int:
    """Run queued imports one at a time; returns how many ran."""
    return service.drain_queue()
