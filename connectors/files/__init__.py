"""files connector."""
