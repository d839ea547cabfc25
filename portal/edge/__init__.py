"""The edge's side of a remote core: its own database, the webhook receiver, the feed catch-up."""
