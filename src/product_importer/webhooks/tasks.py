"""Celery tasks for webhook deliveries."""
