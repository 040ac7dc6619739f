"""ostinato: durable orchestrations for Python, on the storage back end you choose.

Orchestrators are generator functions whose progress is checkpointed as an append-only
history and rebuilt by deterministic replay::

    import ostinato as ot

    app = ot.App()

    @app.activity
    def say_hello(ctx: ot.ActivityContext, city: str) -> str:
        return f"Hello {city}!"

    @app.orchestrator
    def hello_cities(ctx: ot.OrchestrationContext, _input):
        return [(yield ctx.call_activity(say_hello, input=c)) for c in ("Tokyo", "London")]
"""

from importlib import metadata as _metadata

from ostinato.client import (
    AsyncClient,
    Client,
    NewOrchestration,
    PurgeResult,
    StartOutcome,
    StartResult,
    raise_if_failed,
)
from ostinato.config import provider_from_config
from ostinato.converter import DataConverter, JsonDataConverter
from ostinato.errors import (
    ConfigurationError,
    FailureDetails,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    NonDeterminismError,
    OrchestrationFailedError,
    OstinatoError,
    PayloadTooLargeError,
    ProviderError,
    SerializationError,
    TaskFailedError,
    WorkItemLockLost,
)
from ostinato.memory import InMemoryProvider
from ostinato.orchestration.app import App
from ostinato.orchestration.call_http import HttpResponse
from ostinato.orchestration.context import ActivityContext, OrchestrationContext
from ostinato.orchestration.entities import EntityContext, EntityId, EntityLock, EntityMetadata
from ostinato.orchestration.task import Orchestration, Task, when_all, when_any
from ostinato.provider import Page, ProviderCapabilities, ReuseIdPolicy, StorageProvider
from ostinato.retry import RetryPolicy
from ostinato.runtime.supervisor import WorkerSupervisor
from ostinato.runtime.worker import AsyncWorker, Worker
from ostinato.status import OrchestrationState, OrchestrationStatus

#: The installed distribution's version (the repository's VERSION file at build time).
__version__ = _metadata.version("ostinato")

__all__ = [
    "ActivityContext",
    "App",
    "AsyncClient",
    "AsyncWorker",
    "Client",
    "ConfigurationError",
    "DataConverter",
    "EntityContext",
    "EntityId",
    "EntityLock",
    "EntityMetadata",
    "FailureDetails",
    "HttpResponse",
    "InMemoryProvider",
    "InstanceAlreadyExistsError",
    "InstanceNotFoundError",
    "InvalidInstanceIdError",
    "JsonDataConverter",
    "NewOrchestration",
    "NonDeterminismError",
    "Orchestration",
    "OrchestrationContext",
    "OrchestrationFailedError",
    "OrchestrationState",
    "OrchestrationStatus",
    "OstinatoError",
    "Page",
    "PayloadTooLargeError",
    "ProviderCapabilities",
    "ProviderError",
    "PurgeResult",
    "RetryPolicy",
    "ReuseIdPolicy",
    "SerializationError",
    "StartOutcome",
    "StartResult",
    "StorageProvider",
    "Task",
    "TaskFailedError",
    "WorkItemLockLost",
    "Worker",
    "WorkerSupervisor",
    "__version__",
    "provider_from_config",
    "raise_if_failed",
    "when_all",
    "when_any",
]
