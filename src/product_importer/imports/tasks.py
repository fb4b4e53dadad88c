"""Celery tasks for imports: thin wrappers around the queue."""

from celery import shared_task

from . import queue


@shared_task(name=queue.DRAIN_TASK)
def drain_imports() -> int:
    """Run queued imports one at a time; returns how many ran."""
    return queue.drain_queue()
