"""Company intent surges: a preset of the generic HTTP connector (``sources.intent``)."""
