"""The DWBase exception tree.

Every error carries a stable ``code`` that is the same on every surface (library, HTTP, CLI,
WIT, MCP) and a ``details`` dict for machine-readable context.

>>> try:
...     raise InvalidInputError("importance 1.7 is outside [0, 1]", field="importance")
... except DWBaseError as e:
...     (e.code, e.details["field"])
('invalid_input', 'importance')
"""

from __future__ import annotations

from typing import Any


class DWBaseError(Exception):
    """Base class: ``code`` is stable, ``message`` says what happened and what to do."""

    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInputError(DWBaseError):
    code = "invalid_input"


class UnauthenticatedError(DWBaseError):
    code = "unauthenticated"


class CapabilityDeniedError(DWBaseError):
    code = "capability_denied"


class NotFoundError(DWBaseError):
    code = "not_found"


class InvalidHandleError(NotFoundError):
    """An observe handle that never existed, was stopped or expired."""

    code = "invalid_handle"


class ConflictError(DWBaseError):
    code = "conflict"


class PayloadTooLargeError(DWBaseError):
    code = "payload_too_large"


class RateLimitedError(DWBaseError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class LimitExceededError(RateLimitedError):
    """A resource cap is reached (e.g. observe subscriptions per token); ``details`` name it.

    Answered 429 with ``Retry-After`` like :class:`RateLimitedError`, of which it is a kind:
    retrying helps once the caller (or the others) released what holds the limit.
    """

    code = "limit_exceeded"


class UnavailableError(DWBaseError):
    code = "unavailable"


class StorageError(DWBaseError):
    """The store could not be read or written (I/O, corruption, closed store)."""

    code = "storage_error"


class EncryptionKeyError(StorageError):
    """An encrypted store's key is missing, wrong or malformed (``details["reason"]`` says
    which: ``missing``, ``wrong`` or ``invalid``). Raised when the store is opened, never as
    garbage read later."""

    code = "encryption_key"


class InternalError(DWBaseError):
    code = "internal_error"


ERRORS_BY_CODE: dict[str, type[DWBaseError]] = {
    cls.code: cls
    for cls in (
        InvalidInputError,
        UnauthenticatedError,
        CapabilityDeniedError,
        NotFoundError,
        InvalidHandleError,
        ConflictError,
        PayloadTooLargeError,
        RateLimitedError,
        LimitExceededError,
        UnavailableError,
        StorageError,
        EncryptionKeyError,
        InternalError,
    )
}


def error_from_dict(data: dict[str, Any]) -> DWBaseError:
    """Rebuild an error from its wire form ``{"code", "message", "details"}``."""
    code = str(data.get("code", "internal_error"))
    message = str(data.get("message", code))
    details = dict(data.get("details") or {})
    cls = ERRORS_BY_CODE.get(code, DWBaseError)
    if issubclass(cls, RateLimitedError):
        retry = float(details.pop("retry_after", 1.0))
        return cls(message, retry_after=retry, **details)
    err = cls(message, **details)
    if cls is DWBaseError:
        err.code = code
    return err
