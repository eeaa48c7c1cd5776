"""A loopback emulator of Salesforce, HubSpot, NPS and intent APIs, with a synthetic book of business."""
