"""Cal.com API v2 client: one method per endpoint, typed results, one error taxonomy."""

from connector.calcom.client import API_VERSIONS, BookingFilters, BookingPage, CalcomClient
from connector.calcom.responses import RateLimitInfo

__all__ = ["API_VERSIONS", "BookingFilters", "BookingPage", "CalcomClient", "RateLimitInfo"]
