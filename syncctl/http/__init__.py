"""HTTP in one layer: timeouts, one classification table, backoff that honours
Retry-After, a token bucket per channel, redacted errors."""

from syncctl.http.client import Auth, HttpClient, Limits, encode_json
from syncctl.http.ratelimit import TokenBucket

__all__ = ["Auth", "HttpClient", "Limits", "TokenBucket", "encode_json"]
