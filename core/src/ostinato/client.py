"""Clients: start, inspect, signal and clean up orchestration instances.

:class:`Client` is synchronous; :class:`AsyncClient` has the same methods as coroutines and
runs the same :class:`Client` code on a thread (providers are blocking). Instance ids are
checked here, once, for every provider.

Events for instances that do not exist raise :class:`InstanceNotFoundError`. Events, terminate,
suspend and resume for a finished instance are accepted and discarded by the worker, so a
caller that races with an instance's completion never gets an error for it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from ostinato.converter import DataConverter, default_converter
from ostinato.errors import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    OrchestrationFailedError,
    PayloadTooLargeError,
)
from ostinato.frozen import fast_init
from ostinato.history import (
    EntityRequest,
    EventRaised,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
)
from ostinato.ids import new_instance_id, unique_id, validate_instance_id
from ostinato.orchestration.app import name_of
from ostinato.orchestration.entities import (
    EntityId,
    EntityMetadata,
    is_entity_instance,
    metadata_from_record,
)
from ostinato.provider import (
    DeadLetter,
    InstanceQuery,
    InstanceRecord,
    OrchestrationMessage,
    Page,
    ReuseIdPolicy,
    StorageProvider,
)
from ostinato.runtime import telemetry
from ostinato.status import TERMINAL_STATUSES, OrchestrationState, OrchestrationStatus

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class PurgeResult:
    """How many instances a purge deleted."""

    deleted_instance_count: int


@fast_init
@dataclass(frozen=True)
class NewOrchestration:
    """One instance to start with :meth:`Client.schedule_new_orchestrations`; the fields mean
    what :meth:`Client.schedule_new_orchestration`'s arguments mean."""

    orchestrator: Callable[..., Any] | str
    input: Any = None
    instance_id: str | None = None
    start_at: datetime | None = None
    reuse_id_policy: ReuseIdPolicy | None = None
    version: str | None = None
    tags: dict[str, str] | None = None


class StartOutcome(enum.Enum):
    """What became of one :class:`NewOrchestration`."""

    #: The instance was created (or replaced a finished one, as the reuse policy allows).
    CREATED = "created"
    #: An instance with the id exists and the reuse policy keeps it; nothing changed.
    ALREADY_EXISTS = "already_exists"
    #: The item was rejected before reaching the provider (bad id, input, or start time).
    INVALID = "invalid"
    #: The provider failed to write it (see ``error``); it may be retried.
    FAILED = "failed"


@fast_init
@dataclass(frozen=True)
class StartResult:
    """The result for one item of :meth:`Client.schedule_new_orchestrations`.

    ``instance_id`` is the item's id (generated if it had none; as given when invalid);
    ``error`` is the exception behind any outcome but ``CREATED``.
    """

    instance_id: str | None
    outcome: StartOutcome
    error: Exception | None = None

    @property
    def created(self) -> bool:
        return self.outcome is StartOutcome.CREATED


def state_from_record(record: InstanceRecord, fetch_payloads: bool = True) -> OrchestrationState:
    """The client's view of a stored instance record."""
    return OrchestrationState(
        instance_id=record.instance_id,
        name=record.name,
        runtime_status=record.runtime_status,
        created_at=record.created_at,
        last_updated_at=record.last_updated_at,
        serialized_input=record.input if fetch_payloads else None,
        serialized_output=record.output if fetch_payloads else None,
        serialized_custom_status=record.custom_status if fetch_payloads else None,
        failure_details=record.failure_details,
        parent_instance_id=record.parent_instance_id,
        execution_id=record.execution_id,
    )


def raise_if_failed(state: OrchestrationState) -> OrchestrationState:
    """Return ``state``, or raise ``OrchestrationFailedError`` if the instance FAILED."""
    if state.runtime_status is OrchestrationStatus.FAILED:
        raise OrchestrationFailedError(state.instance_id, state.failure_details)
    return state


class _Backoff:
    """Poll delays for waits: short at first, growing to ``maximum``."""

    def __init__(self, first: float = 0.005, maximum: float = 1.0) -> None:
        self.delay = first
        self.maximum = maximum

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay


class Client:
    """A synchronous client for one provider (one task hub)."""

    def __init__(
        self, provider: StorageProvider, *, converter: DataConverter | None = None
    ) -> None:
        self.provider = provider
        self.converter = converter or default_converter
        self._set_up = False

    def _provider(self) -> StorageProvider:
        if not self._set_up:
            self.provider.setup()
            self._set_up = True
        return self.provider

    def _payload(self, value: Any, what: str) -> str | None:
        payload = self.converter.dumps(value)
        limit = self.provider.capabilities.max_payload_bytes
        if payload is not None and limit is not None:
            size = len(payload.encode("utf-8"))
            if size > limit:
                raise PayloadTooLargeError(
                    f"The {what} is {size} bytes; this provider stores at most {limit}"
                )
        return payload

    # -- starting -------------------------------------------------------------------------
    def schedule_new_orchestration(
        self,
        orchestrator: Callable[..., Any] | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        reuse_id_policy: ReuseIdPolicy | None = None,
        version: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Start an orchestration and return its instance id.

        With an existing ``instance_id`` the ``reuse_id_policy`` decides (default: replace a
        finished instance, raise ``InstanceAlreadyExistsError`` for an active one); the check
        and the create are one atomic write in the provider. ``version`` is the orchestration
        version the instance runs as (``ctx.version``; see ``ot.VersioningOptions``); ``tags``
        are string labels the orchestration reads as ``ctx.tags``.
        """
        record, start, policy = self._new_instance(
            NewOrchestration(
                orchestrator, input, instance_id, start_at, reuse_id_policy, version, tags
            )
        )
        self._provider().create_instance(record, start, policy)
        return record.instance_id

    def schedule_new_orchestrations(
        self, orchestrations: Iterable[NewOrchestration]
    ) -> list[StartResult]:
        """Start many orchestrations in one provider call; one :class:`StartResult` per item,
        in order.

        Each item is checked here first: a bad one (an invalid id, input that cannot be
        serialized or is too large, a naive ``start_at``) is ``INVALID`` and the others still
        start. An id whose instance exists is ``ALREADY_EXISTS`` as the item's reuse policy
        decides (a repeated id in one call meets the instance its first item created).
        Providers write the batch in as few transactions as they can.
        """
        results: list[StartResult | None] = []
        requests: list[tuple[InstanceRecord, OrchestrationMessage, ReuseIdPolicy]] = []
        for item in orchestrations:
            try:
                if not isinstance(item, NewOrchestration):
                    raise TypeError(f"Expected a NewOrchestration, got {type(item).__name__}")
                request = self._new_instance(item)
            except Exception as exc:  # noqa: BLE001 - reported for this item only
                given = getattr(item, "instance_id", None)
                results.append(
                    StartResult(
                        given if isinstance(given, str) else None, StartOutcome.INVALID, exc
                    )
                )
                continue
            results.append(None)
            requests.append(request)
        errors = self._provider().create_instances(requests) if requests else []
        outcomes = iter(zip(requests, errors, strict=True))
        return [result or _start_result(*next(outcomes)) for result in results]

    def _new_instance(
        self, item: NewOrchestration
    ) -> tuple[InstanceRecord, OrchestrationMessage, ReuseIdPolicy]:
        """The record, start message and reuse policy for ``item`` (raises for an invalid
        item)."""
        instance_id = (
            new_instance_id()
            if item.instance_id is None
            else validate_instance_id(item.instance_id)
        )
        policy = _reuse_id_policy(item.reuse_id_policy)
        name = name_of(item.orchestrator)
        payload = self._payload(item.input, "orchestration input")
        start_at = item.start_at
        if start_at is not None and start_at.tzinfo is None:
            raise ValueError("start_at needs an aware datetime (e.g. with tzinfo=timezone.utc)")
        tags = item.tags
        if tags is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise TypeError("tags must map strings to strings")
        now = self.provider.now()
        execution_id = unique_id()
        record = InstanceRecord(
            instance_id=instance_id,
            name=name,
            execution_id=execution_id,
            runtime_status=OrchestrationStatus.PENDING,
            created_at=now,
            last_updated_at=now,
            input=payload,
        )
        start = OrchestrationMessage(
            instance_id=instance_id,
            execution_id=execution_id,
            visible_at=start_at,
            event=ExecutionStarted(
                timestamp=now,
                name=name,
                execution_id=execution_id,
                input=payload,
                scheduled_start_at=start_at,
                version=item.version,
                tags=dict(tags) if tags else None,
                trace_context=telemetry.current().orchestration_scheduled(name, instance_id),
            ),
        )
        return record, start, policy

    def restart_orchestration(
        self, instance_id: str, *, restart_with_new_instance_id: bool = True
    ) -> str:
        """Start the instance's orchestration again, with the input (and version and tags) its
        current execution started with; returns the new instance's id.

        With ``restart_with_new_instance_id=False`` the instance is replaced under its own id,
        which needs it to be finished (else ``InstanceAlreadyExistsError``).
        """
        validate_instance_id(instance_id)
        record = self._provider().get_instance(instance_id)
        if record is None or is_entity_instance(instance_id):
            raise InstanceNotFoundError(instance_id)
        started = next(
            (e for e in self.provider.get_history(instance_id) if isinstance(e, ExecutionStarted)),
            None,
        )
        payload = started.input if started is not None else record.input
        again = NewOrchestration(
            record.name,
            self.converter.loads(payload),
            None if restart_with_new_instance_id else instance_id,
            version=started.version if started is not None else None,
            tags=started.tags if started is not None else None,
        )
        new_record, start, policy = self._new_instance(again)
        self._provider().create_instance(new_record, start, policy)
        return new_record.instance_id

    def rewind_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Run a FAILED instance again from its last step that did not fail.

        The failed step is dropped from its history; activities and sub-orchestrations whose
        failure made it fail run again (failed sub-orchestrations are rewound in turn), and the
        code continues from there, typically after a fix was deployed. Raises ``ValueError``
        for an instance that is not FAILED.
        """
        validate_instance_id(instance_id)
        record = self._provider().get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        if record.runtime_status is not OrchestrationStatus.FAILED:
            raise ValueError(
                f"Only a FAILED instance can be rewound; '{instance_id}' is "
                f"{record.runtime_status.value}"
            )
        self.provider.send_message(
            OrchestrationMessage(
                instance_id=instance_id,
                execution_id=record.execution_id,
                event=ExecutionRewound(reason=reason),
            )
        )

    # -- reading --------------------------------------------------------------------------
    def get_orchestration_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> OrchestrationState | None:
        """The instance's state, or ``None`` if there is no such instance."""
        record = self._provider().get_instance(validate_instance_id(instance_id))
        return None if record is None else state_from_record(record, fetch_payloads)

    def get_orchestration_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's history events, oldest first."""
        validate_instance_id(instance_id)
        if self._provider().get_instance(instance_id) is None:
            raise InstanceNotFoundError(instance_id)
        return self.provider.get_history(instance_id)

    def query_instances(
        self,
        *,
        runtime_status: Collection[OrchestrationStatus] | None = None,
        name_prefix: str | None = None,
        instance_id_prefix: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        fetch_payloads: bool = True,
    ) -> Page[OrchestrationState]:
        """One page of instances matching the filters, ordered by instance id.

        Entities are left out (unless ``instance_id_prefix`` starts with ``@``), so a page may
        hold fewer than ``page_size`` items; page on until ``continuation_token`` is ``None``.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        query = InstanceQuery(
            runtime_status=frozenset(runtime_status) if runtime_status is not None else None,
            name_prefix=name_prefix,
            instance_id_prefix=instance_id_prefix,
            created_from=created_from,
            created_to=created_to,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        page = self._provider().query_instances(query)
        with_entities = (instance_id_prefix or "").startswith("@")
        return Page(
            items=[
                state_from_record(r, fetch_payloads)
                for r in page.items
                if with_entities or not is_entity_instance(r.instance_id)
            ],
            continuation_token=page.continuation_token,
        )

    # -- waiting --------------------------------------------------------------------------
    def _wait(
        self,
        instance_id: str,
        timeout: float,
        done: Callable[[OrchestrationState], bool],
        statuses: Collection[OrchestrationStatus],
    ) -> OrchestrationState:
        validate_instance_id(instance_id)
        provider = self._provider()
        deadline = time.monotonic() + timeout
        backoff = _Backoff()
        # Woken only when this instance's status may have changed to one of ``statuses``
        # (other writes in this process don't cost a read); other processes' writes are
        # seen by polling unless the provider signals them.
        with provider.changes.watching(instance_id, statuses) as changed:
            while True:
                changed.clear()
                record = provider.get_instance(instance_id)
                if record is not None:
                    state = state_from_record(record)
                    if done(state):
                        return state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"Timed out after {timeout}s waiting for orchestration '{instance_id}'"
                    )
                changed.wait(min(backoff.next(), remaining))

    def wait_for_orchestration_start(
        self, instance_id: str, *, timeout: float = 60
    ) -> OrchestrationState:
        """Wait until the instance has left PENDING; raises ``TimeoutError``."""
        return self._wait(instance_id, timeout, _has_started, _STARTED)

    def wait_for_orchestration_completion(
        self, instance_id: str, *, timeout: float = 60
    ) -> OrchestrationState:
        """Wait until the instance is COMPLETED, FAILED or TERMINATED; raises ``TimeoutError``.

        Call ``raise_if_failed(state)`` (or check ``runtime_status``) to turn a FAILED
        instance into ``OrchestrationFailedError``.
        """
        return self._wait(instance_id, timeout, _has_finished, TERMINAL_STATUSES)

    # -- signalling -----------------------------------------------------------------------
    def _send(self, instance_id: str, event: HistoryEvent) -> None:
        validate_instance_id(instance_id)
        provider = self._provider()
        if provider.get_instance(instance_id) is None:
            raise InstanceNotFoundError(instance_id)
        provider.send_message(OrchestrationMessage(instance_id=instance_id, event=event))

    def raise_orchestration_event(
        self, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        """Send event ``event_name`` with ``data`` to the instance."""
        payload = self._payload(data, "event data")
        self._send(instance_id, EventRaised(name=event_name, input=payload))

    def terminate_orchestration(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        """Terminate the instance (and, with ``recursive``, its running sub-orchestrations)."""
        payload = self._payload(output, "termination output")
        self._send(instance_id, ExecutionTerminated(output=payload, recursive=recursive))

    def suspend_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Suspend the instance: events are held until it is resumed."""
        self._send(instance_id, ExecutionSuspended(reason=reason))

    def resume_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Resume a suspended instance."""
        self._send(instance_id, ExecutionResumed(reason=reason))

    # -- entities ------------------------------------------------------------------------
    def signal_entity(
        self,
        entity_id: EntityId,
        operation: str,
        input: Any = None,
        *,
        scheduled_time: datetime | None = None,
    ) -> None:
        """Send ``operation`` (with ``input``) to an entity, one-way.

        The entity is created by its first operation; ``scheduled_time`` delays delivery.
        """
        if scheduled_time is not None and scheduled_time.tzinfo is None:
            raise ValueError("scheduled_time needs an aware datetime")
        payload = self._payload(input, "entity operation input")
        request = EntityRequest(request_id=unique_id(), operation=operation, input=payload)
        self._provider().send_message(
            OrchestrationMessage(
                instance_id=entity_id.instance_id, event=request, visible_at=scheduled_time
            )
        )

    def get_entity(self, entity_id: EntityId) -> EntityMetadata | None:
        """The entity's state and lock holder, or ``None`` if it has never run an operation."""
        record = self._provider().get_instance(entity_id.instance_id)
        return None if record is None else metadata_from_record(record)

    def query_entities(
        self,
        *,
        name: str | None = None,
        key_prefix: str = "",
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> Page[EntityMetadata]:
        """Entities (all, or of one ``name``, optionally by key prefix), ordered by id."""
        prefix = f"@{name.lower()}@{key_prefix}" if name else "@"
        page = self._provider().query_instances(
            InstanceQuery(
                instance_id_prefix=prefix,
                page_size=page_size,
                continuation_token=continuation_token,
            )
        )
        return Page(
            items=[
                metadata_from_record(r) for r in page.items if is_entity_instance(r.instance_id)
            ],
            continuation_token=page.continuation_token,
        )

    # -- purging -------------------------------------------------------------------------
    def purge_orchestration(
        self, instance_id: str, *, recursive: bool = True, force: bool = False
    ) -> PurgeResult:
        """Delete a finished instance and everything stored for it.

        Only COMPLETED, FAILED and TERMINATED instances are purged; for others (or a missing
        id) nothing is deleted and the count is 0, unless ``force`` (any status: its pending
        messages and activity tasks go too, and a worker still running a step of it loses
        its lock). With ``recursive`` its sub-orchestrations are purged too.
        """
        validate_instance_id(instance_id)
        statuses = frozenset(OrchestrationStatus) if force else TERMINAL_STATUSES
        return PurgeResult(self._purge(instance_id, recursive, statuses))

    def _purge(
        self, instance_id: str, recursive: bool, statuses: frozenset[OrchestrationStatus]
    ) -> int:
        provider = self._provider()
        children: list[str] = []
        if recursive:
            children = [
                e.instance_id
                for e in provider.get_history(instance_id)
                if isinstance(e, SubOrchestrationInstanceCreated)
            ]
        deleted = int(provider.purge_instance(instance_id, statuses))
        if deleted:
            for child in dict.fromkeys(children):
                deleted += self._purge(child, recursive, statuses)
        return deleted

    # -- dead letters ---------------------------------------------------------------------
    def list_dead_letters(
        self, *, instance_id: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Records the provider moved aside because they could not be decoded, oldest first
        (of one instance, if given)."""
        return self._provider().list_dead_letters(instance_id, limit)

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        """One dead letter (with the record as it was stored), or ``None``."""
        return self._provider().get_dead_letter(dead_letter_id)

    def retry_dead_letter(self, dead_letter_id: str) -> bool:
        """Put a dead letter back where it came from (e.g. after upgrading the code that
        could not read it); returns whether it existed."""
        return self._provider().retry_dead_letter(dead_letter_id)

    def delete_dead_letter(self, dead_letter_id: str) -> bool:
        """Delete a dead letter for good; returns whether it existed."""
        return self._provider().delete_dead_letter(dead_letter_id)

    def purge_orchestrations_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Collection[OrchestrationStatus] | None = None,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> PurgeResult:
        """Purge every finished instance created in the range with one of the statuses.

        ``runtime_status`` defaults to all finished statuses; active ones are never purged.
        ``on_progress`` is called with the running count after each page.
        """
        statuses = frozenset(runtime_status or TERMINAL_STATUSES) & TERMINAL_STATUSES
        deleted = 0
        token: str | None = None
        while statuses:
            page = self._provider().query_instances(
                InstanceQuery(
                    runtime_status=statuses,
                    created_from=created_time_from,
                    created_to=created_time_to,
                    page_size=500,
                    continuation_token=token,
                )
            )
            for record in page.items:
                deleted += int(self.provider.purge_instance(record.instance_id, statuses))
            if on_progress is not None:
                on_progress(deleted)
            token = page.continuation_token
            if token is None:
                break
        return PurgeResult(deleted)


def _reuse_id_policy(policy: object) -> ReuseIdPolicy:
    """``policy`` checked at the call (``None``: the default); anything else raises TypeError."""
    if policy is None:
        return ReuseIdPolicy.REPLACE_TERMINAL
    if isinstance(policy, ReuseIdPolicy):
        return policy
    members = ", ".join(f"ReuseIdPolicy.{m.name}" for m in ReuseIdPolicy)
    hint = ""
    if isinstance(policy, str) and policy.upper() in ReuseIdPolicy.__members__:
        hint = f" (use ot.ReuseIdPolicy.{policy.upper()})"
    raise TypeError(
        f"reuse_id_policy must be one of {members} or None, not {policy!r}"
        f" ({type(policy).__name__}){hint}"
    )


#: The statuses an instance that has started may have.
_STARTED = frozenset(OrchestrationStatus) - {OrchestrationStatus.PENDING}


def _has_started(state: OrchestrationState) -> bool:
    return state.runtime_status is not OrchestrationStatus.PENDING


def _start_result(
    request: tuple[InstanceRecord, OrchestrationMessage, ReuseIdPolicy], error: Exception | None
) -> StartResult:
    instance_id = request[0].instance_id
    if error is None:
        return StartResult(instance_id, StartOutcome.CREATED)
    if isinstance(error, InstanceAlreadyExistsError):
        return StartResult(instance_id, StartOutcome.ALREADY_EXISTS, error)
    return StartResult(instance_id, StartOutcome.FAILED, error)


def _has_finished(state: OrchestrationState) -> bool:
    return state.runtime_status.is_terminal


def _in_thread(
    method: Callable[Concatenate[Client, P], T],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """``method`` of :class:`Client` as a coroutine of :class:`AsyncClient`, run on a thread."""

    async def in_thread(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(method, self._client, *args, **kwargs)

    in_thread.__name__ = method.__name__
    in_thread.__qualname__ = f"AsyncClient.{method.__name__}"
    in_thread.__doc__ = f"See :meth:`Client.{method.__name__}` (awaitable; runs on a thread)."
    in_thread.__wrapped__ = method  # type: ignore[attr-defined]  # inspect.signature follows it
    return in_thread


class AsyncClient:
    """The asyncio face of :class:`Client`: the same methods and signatures, as coroutines.

    Each method is built from the :class:`Client` method of the same name (one table, below),
    so the two faces cannot drift apart; the call runs on a thread (``asyncio.to_thread``), and
    waits watch the provider's change signal exactly as :class:`Client`'s do.
    """

    def __init__(
        self, provider: StorageProvider, *, converter: DataConverter | None = None
    ) -> None:
        self._client = Client(provider, converter=converter)
        self.provider = provider

    schedule_new_orchestration = _in_thread(Client.schedule_new_orchestration)
    schedule_new_orchestrations = _in_thread(Client.schedule_new_orchestrations)
    restart_orchestration = _in_thread(Client.restart_orchestration)
    rewind_orchestration = _in_thread(Client.rewind_orchestration)
    get_orchestration_state = _in_thread(Client.get_orchestration_state)
    get_orchestration_history = _in_thread(Client.get_orchestration_history)
    query_instances = _in_thread(Client.query_instances)
    wait_for_orchestration_start = _in_thread(Client.wait_for_orchestration_start)
    wait_for_orchestration_completion = _in_thread(Client.wait_for_orchestration_completion)
    raise_orchestration_event = _in_thread(Client.raise_orchestration_event)
    terminate_orchestration = _in_thread(Client.terminate_orchestration)
    suspend_orchestration = _in_thread(Client.suspend_orchestration)
    resume_orchestration = _in_thread(Client.resume_orchestration)
    signal_entity = _in_thread(Client.signal_entity)
    get_entity = _in_thread(Client.get_entity)
    query_entities = _in_thread(Client.query_entities)
    purge_orchestration = _in_thread(Client.purge_orchestration)
    purge_orchestrations_by = _in_thread(Client.purge_orchestrations_by)
    list_dead_letters = _in_thread(Client.list_dead_letters)
    get_dead_letter = _in_thread(Client.get_dead_letter)
    retry_dead_letter = _in_thread(Client.retry_dead_letter)
    delete_dead_letter = _in_thread(Client.delete_dead_letter)


__all__ = [
    "AsyncClient",
    "Client",
    "NewOrchestration",
    "PurgeResult",
    "StartOutcome",
    "StartResult",
    "raise_if_failed",
    "state_from_record",
]
