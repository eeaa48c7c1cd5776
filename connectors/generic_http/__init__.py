"""JSON-over-HTTP sources declared in YAML."""
