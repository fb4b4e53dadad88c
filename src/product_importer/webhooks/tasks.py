"""Celery tasks for webhook deliveries: thin wrappers around the delivery module.

Their names start with `product_importer.webhooks.`, which routes them to the `webhooks` queue.
"""

from celery import shared_task

from . import delivery, events


@shared_task(name=events.DELIVER_TASK)
def deliver(delivery_ids: list[int]) -> int:
    """Send the given deliveries if they are due; returns how many attempts were made."""
    return delivery.deliver(delivery_ids)
