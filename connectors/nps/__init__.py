"""NPS/CSAT survey responses: a preset of the generic HTTP connector (``sources.nps``)."""
