"""intent connector."""
