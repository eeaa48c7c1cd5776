"""The HubSpot CRM v3/v4 emulator: objects, search, associations, properties, owners and rate limits.

``HubSpotApp`` serves the book of business the way ``api.hubapi.com`` serves a portal, closely enough
that the unmodified hubspot-api-client works against it.
"""

from sandbox.hubspot.app import HubSpotApp
from sandbox.hubspot.ratelimit import RateLimits

__all__ = ["HubSpotApp", "RateLimits"]
