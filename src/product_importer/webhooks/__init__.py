"""Webhooks: endpoints, signed event deliveries, their API and page."""
