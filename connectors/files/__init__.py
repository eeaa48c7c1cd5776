"""Usage and billing from a warehouse or files."""
