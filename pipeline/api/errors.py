"""The API's errors, as every client raises them (the whole tree is ``pipeline.errors``)."""

from pipeline.errors import (
    ApiError,
    AuthRefused,
    ConnectFailed,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    TransientError,
)

__all__ = [
    "ApiError",
    "AuthRefused",
    "ConnectFailed",
    "OutcomeUnknown",
    "RateLimited",
    "RequestRejected",
    "TransientError",
]
