"""forms app."""
