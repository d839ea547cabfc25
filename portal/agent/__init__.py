"""agent app."""
