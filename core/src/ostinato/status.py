"""Orchestration runtime status and the public view of an instance."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, overload

from ostinato.converter import default_converter
from ostinato.errors import FailureDetails, OrchestrationFailedError
from ostinato.frozen import fast_init

T = TypeVar("T")


class OrchestrationStatus(enum.Enum):
    """Runtime status of an orchestration instance."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"
    SUSPENDED = "SUSPENDED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"

    #: Members are singletons compared by identity: hashed by identity too (a C slot), not
    #: by ``Enum.__hash__``, a Python call at each set or dict lookup such as
    #: :attr:`is_terminal`.
    __hash__ = object.__hash__

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED, FAILED and TERMINATED: such an instance never runs again."""
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """True for PENDING, RUNNING, SUSPENDED and CONTINUED_AS_NEW."""
        return not self.is_terminal


TERMINAL_STATUSES = frozenset(
    {OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED}
)


@fast_init
@dataclass(frozen=True)
class OrchestrationState:
    """What a client sees of an orchestration instance.

    ``input``, ``output`` and ``custom_status`` are the serialized (JSON) payloads;
    ``serialized_*`` hold the same text and the un-prefixed accessors decode them.
    """

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    created_at: datetime
    last_updated_at: datetime
    serialized_input: str | None
    serialized_output: str | None
    serialized_custom_status: str | None
    failure_details: FailureDetails | None
    parent_instance_id: str | None = None
    execution_id: str | None = None

    @property
    def input(self) -> Any:
        """The instance's input, decoded from JSON."""
        return default_converter.loads(self.serialized_input)

    @property
    def output(self) -> Any:
        """The instance's output, decoded from JSON (``None`` while it runs)."""
        return default_converter.loads(self.serialized_output)

    @property
    def custom_status(self) -> Any:
        """The value last given to ``ctx.set_custom_status``, decoded from JSON."""
        return default_converter.loads(self.serialized_custom_status)

    @property
    def is_running(self) -> bool:
        return self.runtime_status.is_active

    @overload
    def get_output(self, type_hint: type[T]) -> T | None: ...
    @overload
    def get_output(self, type_hint: None = None) -> Any: ...

    def get_output(self, type_hint: Any = None) -> Any:
        """The output decoded as ``type_hint`` (a dataclass, a pydantic model, ``list[X]``,
        ...); ``None`` while there is none."""
        return default_converter.loads(self.serialized_output, type_hint)

    @overload
    def get_input(self, type_hint: type[T]) -> T | None: ...
    @overload
    def get_input(self, type_hint: None = None) -> Any: ...

    def get_input(self, type_hint: Any = None) -> Any:
        """The input decoded as ``type_hint``."""
        return default_converter.loads(self.serialized_input, type_hint)

    def raise_if_failed(self) -> OrchestrationState:
        """Return this state, or raise ``OrchestrationFailedError`` if the instance FAILED."""
        if self.runtime_status is OrchestrationStatus.FAILED:
            raise OrchestrationFailedError(self.instance_id, self.failure_details)
        return self


__all__ = [
    "TERMINAL_STATUSES",
    "OrchestrationState",
    "OrchestrationStatus",
]
