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


def _error(name: str, status: int, message_key: str = "message", typed: bool = True) -> type[ServiceError]:
    return type(name, (ServiceError,), {"code": name, "status": status,
                                        "message_key": message_key, "typed": typed})


ValidationException = _error("ValidationException", 400, typed=False)
InvalidParameterValueException = _error("InvalidParameterValueException", 400)
InvalidRequestContentException = _error("InvalidRequestContentException", 400)
ResourceNotFoundException = _error("ResourceNotFoundException", 404, "Message")
ResourceConflictException = _error("ResourceConflictException", 409)
PreconditionFailedException = _error("PreconditionFailedException", 412)
RequestEntityTooLargeException = _error("RequestEntityTooLargeException", 413)
TooManyRequestsException = _error("TooManyRequestsException", 429)
UnsupportedMediaTypeException = _error("UnsupportedMediaTypeException", 415)
ServiceException = _error("ServiceException", 500, "Message")
MissingAuthenticationTokenException = _error("MissingAuthenticationTokenException", 403, typed=False)
UnrecognizedClientException = _error("UnrecognizedClientException", 403, typed=False)
InvalidSignatureException = _error("InvalidSignatureException", 403, typed=False)
AccessDeniedException = _error("AccessDeniedException", 403, "Message")
UnknownOperationException = _error("UnknownOperationException", 404, "Message", typed=False)


class ErrorType(str, enum.Enum):
    """errorType values the platform itself puts in a failed invocation's payload."""

    SANDBOX_TIMEDOUT = "Sandbox.Timedout"
    RUNTIME_EXIT = "Runtime.ExitError"
    RUNTIME_INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
    RUNTIME_INIT_ERROR = "Runtime.Unknown"
    RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
