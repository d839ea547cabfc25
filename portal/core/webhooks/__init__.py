"""Webhooks of the core: endpoints each tenant registers, and the sender that pushes events."""
