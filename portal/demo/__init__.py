"""Demo data for the "Demo Co" help center: knowledge base articles in every language."""
