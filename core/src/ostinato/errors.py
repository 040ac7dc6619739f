"""Exceptions raised by ostinato.

The tree::

    OstinatoError
    ├── OrchestrationError                  raised to client code
    │   ├── OrchestrationFailedError        the awaited instance ended FAILED
    │   ├── InstanceAlreadyExistsError      reuse-id policy refused a start
    │   ├── InstanceNotFoundError           no instance with that id
    │   └── InvalidInstanceIdError          the id breaks the instance-id rules
    ├── TaskFailedError                     raised inside orchestrator code
    ├── NonDeterminismError                 orchestrator code diverged from its history
    ├── SerializationError (also TypeError) a payload the data converter cannot encode/decode
    ├── PayloadTooLargeError                a payload above the provider's limit
    ├── ConfigurationError                  bad or missing configuration
    └── ProviderError                       raised by storage providers
        └── WorkItemLockLost                another worker owns the work item now
"""

from __future__ import annotations

from dataclasses import dataclass


class OstinatoError(Exception):
    """Base class of every ostinato error."""


@dataclass(frozen=True)
class FailureDetails:
    """Why a task or an orchestration failed: exception type name, message and stack trace."""

    error_type: str
    message: str
    stack_trace: str | None = None
    inner: FailureDetails | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> FailureDetails:
        """Describe ``exc`` (its type, message and formatted traceback)."""
        import traceback

        if isinstance(exc, TaskFailedError):
            # A failure that bubbles up from a task keeps the original cause as ``inner``.
            return cls(
                error_type=type(exc).__name__,
                message=str(exc),
                stack_trace="".join(traceback.format_exception(exc)),
                inner=exc.details,
            )
        return cls(
            error_type=type(exc).__name__,
            message=str(exc),
            stack_trace="".join(traceback.format_exception(exc)),
        )

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"type": self.error_type, "message": self.message}
        if self.stack_trace is not None:
            data["stack"] = self.stack_trace
        if self.inner is not None:
            data["inner"] = self.inner.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> FailureDetails:
        inner = data.get("inner")
        stack = data.get("stack")
        return cls(
            error_type=str(data["type"]),
            message=str(data["message"]),
            stack_trace=str(stack) if stack is not None else None,
            inner=cls.from_dict(inner) if isinstance(inner, dict) else None,
        )

    def is_caused_by(self, error_type: type[BaseException] | str) -> bool:
        """True if this failure (or one it wraps) has the given exception type name."""
        name = error_type if isinstance(error_type, str) else error_type.__name__
        details: FailureDetails | None = self
        while details is not None:
            if details.error_type == name:
                return True
            details = details.inner
        return False


class OrchestrationError(OstinatoError):
    """Base class of errors raised to client code about an orchestration instance."""


class OrchestrationFailedError(OrchestrationError):
    """The orchestration instance ended in the FAILED state."""

    def __init__(self, instance_id: str, details: FailureDetails | None) -> None:
        self.instance_id = instance_id
        self.details = details
        reason = f"{details.error_type}: {details.message}" if details else "unknown reason"
        super().__init__(f"Orchestration '{instance_id}' failed: {reason}")


class InstanceAlreadyExistsError(OrchestrationError):
    """An instance with this id exists and the reuse-id policy forbids replacing it."""

    def __init__(self, instance_id: str, status: object | None = None) -> None:
        self.instance_id = instance_id
        self.status = status
        super().__init__(f"An instance with ID '{instance_id}' already exists.")


class InstanceNotFoundError(OrchestrationError):
    """No orchestration instance has this id."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"No orchestration instance with ID '{instance_id}' was found.")


class InvalidInstanceIdError(OrchestrationError, ValueError):
    """The instance id breaks one of the instance-id rules (the message names which)."""


class TaskFailedError(OstinatoError):
    """An activity, sub-orchestration or other task failed; raised into orchestrator code."""

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self.details = details


class NonDeterminismError(OstinatoError):
    """The orchestrator's actions on replay differ from the ones recorded in its history."""


class SerializationError(OstinatoError, TypeError):
    """A value could not be encoded or decoded by the data converter."""


class PayloadTooLargeError(OstinatoError, ValueError):
    """A payload exceeds the provider's maximum payload size."""


class ConfigurationError(OstinatoError, ValueError):
    """Configuration is missing or invalid."""


class ProviderError(OstinatoError):
    """An error reported by a storage provider."""


class WorkItemLockLost(ProviderError):
    """The work item's lock is no longer held by this worker; its work must be dropped."""


__all__ = [
    "ConfigurationError",
    "FailureDetails",
    "InstanceAlreadyExistsError",
    "InstanceNotFoundError",
    "InvalidInstanceIdError",
    "NonDeterminismError",
    "OrchestrationError",
    "OrchestrationFailedError",
    "OstinatoError",
    "PayloadTooLargeError",
    "ProviderError",
    "SerializationError",
    "TaskFailedError",
    "WorkItemLockLost",
]
