"""nps connector."""
