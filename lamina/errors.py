"""The one error hierarchy. Platform errors are LaminaErrors; function failures are values."""
from __future__ import annotations

import enum


class LaminaError(Exception):
    """Base of every error Lamina raises on purpose."""


class ServiceError(LaminaError):
    """An error with an AWS wire shape: code (x-amzn-ErrorType), HTTP status, message."""

    code = "ServiceException"
    status = 500
    message_key = "Message"          # botocore's model spells it per shape
    typed = True                     # modeled errors carry "Type": "User"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.typed:
            out["Type"] = "User" if self.status < 500 else "Service"
        out[self.message_key] = self.message
        out.update(self.extra)
        return out


class ValidationException(ServiceError):
    """A request that breaks the model's constraints (no Type field)."""

    code = "ValidationException"
    status = 400
    message_key = "message"
    typed = False


class InvalidParameterValueException(ServiceError):
    code = "InvalidParameterValueException"
    status = 400
    message_key = "message"


class InvalidRequestContentException(ServiceError):
    code = "InvalidRequestContentException"
    status = 400
    message_key = "message"


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


class ResourceConflictException(ServiceError):
    code = "ResourceConflictException"
    status = 409
    message_key = "message"


class PreconditionFailedException(ServiceError):
    code = "PreconditionFailedException"
    status = 412
    message_key = "message"


class RequestEntityTooLargeException(ServiceError):
    code = "RequestEntityTooLargeException"
    status = 413
    message_key = "message"


class TooManyRequestsException(ServiceError):
    code = "TooManyRequestsException"
    status = 429
    message_key = "message"


class UnsupportedMediaTypeException(ServiceError):
    code = "UnsupportedMediaTypeException"
    status = 415
    message_key = "message"


class ServiceException(ServiceError):
    code = "ServiceException"
    status = 500


class MissingAuthenticationTokenException(ServiceError):
    code = "MissingAuthenticationTokenException"
    status = 403
    message_key = "message"
    typed = False


class UnrecognizedClientException(ServiceError):
    code = "UnrecognizedClientException"
    status = 403
    message_key = "message"
    typed = False


class InvalidSignatureException(ServiceError):
    code = "InvalidSignatureException"
    status = 403
    message_key = "message"
    typed = False


class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"
    status = 403


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"
    status = 404
    typed = False


class ErrorType(str, enum.Enum):
    """errorType values the platform itself puts in a failed invocation's payload."""

    SANDBOX_TIMEDOUT = "Sandbox.Timedout"
    RUNTIME_EXIT = "Runtime.ExitError"
    RUNTIME_INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    RUNTIME_INIT_ERROR = "Runtime.Unknown"
    RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
