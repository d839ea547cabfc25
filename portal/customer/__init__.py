"""customer app."""
