"""Celery tasks for webhook deliveries: thin wrappers around the service.

Their names start with `product_importer.webhooks.`, which routes them to the `webhooks` queue.
"""

from celery import shared_task

from . import service


@shared_task(name="product_importer.webhooks.deliver")
def deliver(delivery_ids: list[int]) -> int:
    """Send the given deliveries if they are due; returns how many attempts were made."""
    return service.deliver(delivery_ids)
