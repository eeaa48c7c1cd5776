"""generic_http connector."""
