"""Webhook endpoints and deliveries."""


def periodic() -> None:
    """Send deliveries that are due."""
