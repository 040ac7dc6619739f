"""The sync and async faces cannot drift: same methods, same signatures, same behaviour."""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import ostinato as ot
import pytest
from ostinato.runtime.worker import WorkerOptions

app = ot.App()


@app.activity
def shout(ctx: ot.ActivityContext, text: str) -> str:
    return text.upper()


@app.orchestrator
def greet(ctx: ot.OrchestrationContext, name: str) -> Generator[Any, Any, str]:
    loud = yield ctx.call_activity(shout, input=name)
    suffix = yield ctx.wait_for_external_event("suffix")
    ctx.set_custom_status("greeted")
    return f"{loud}{suffix}"


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and inspect.isfunction(member)
    }


def test_async_client_has_every_client_method_with_the_same_signature() -> None:
    sync_methods = public_methods(ot.Client)
    async_methods = public_methods(ot.AsyncClient)
    assert sorted(async_methods) == sorted(sync_methods)
    for name, method in async_methods.items():
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(sync_methods[name]), name


def test_worker_options_are_exactly_the_async_workers_keywords() -> None:
    parameters = inspect.signature(ot.AsyncWorker.__init__).parameters
    keywords = {
        name: str(p.annotation)
        for name, p in parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    hints = typing.get_type_hints(WorkerOptions)
    worker_hints = typing.get_type_hints(ot.AsyncWorker.__init__)
    assert set(hints) == set(keywords)
    assert {name: worker_hints[name] for name in keywords} == hints


class AsyncFace:
    """Calls an :class:`~ostinato.AsyncClient` from sync test code, on one event loop that
    also runs an :class:`~ostinato.AsyncWorker`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: ot.AsyncClient) -> None:
        self._loop = loop
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            coroutine: Coroutine[Any, Any, Any] = method(*args, **kwargs)
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

        return call


@contextmanager
def sync_face(provider: ot.InMemoryProvider) -> Iterator[Any]:
    with ot.Worker(app, provider, max_poll_interval=0.05):
        yield ot.Client(provider)


@contextmanager
def async_face(provider: ot.InMemoryProvider) -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    worker = ot.AsyncWorker(app, provider, max_poll_interval=0.05)
    try:
        asyncio.run_coroutine_threadsafe(worker.start(), loop).result(timeout=60)
        yield AsyncFace(loop, ot.AsyncClient(provider))
        asyncio.run_coroutine_threadsafe(worker.stop(), loop).result(timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.mark.parametrize("face", [sync_face, async_face], ids=["Client", "AsyncClient"])
def test_one_scenario_through_both_faces(face: Callable[..., Any]) -> None:
    provider = ot.InMemoryProvider()
    with face(provider) as client:
        instance_id = client.schedule_new_orchestration(greet, input="ada", instance_id="twin")
        started = client.wait_for_orchestration_start(instance_id, timeout=30)
        assert started.runtime_status in (ot.OrchestrationStatus.RUNNING,)
        client.raise_orchestration_event(instance_id, "suffix", data="!")
        done = client.wait_for_orchestration_completion(instance_id, timeout=30)
        assert (done.output, done.custom_status) == ("ADA!", "greeted")
        assert client.get_orchestration_state(instance_id).runtime_status is (
            ot.OrchestrationStatus.COMPLETED
        )
        names = [type(e).__name__ for e in client.get_orchestration_history(instance_id)]
        assert names[0] == "ExecutionStarted" and names[-1] == "ExecutionCompleted"
        page = client.query_instances(instance_id_prefix="tw")
        assert [s.instance_id for s in page.items] == ["twin"]
        other = client.schedule_new_orchestration(greet, input="bob")
        client.wait_for_orchestration_start(other, timeout=30)
        client.terminate_orchestration(other, output="stopped")
        ended = client.wait_for_orchestration_completion(other, timeout=30)
        assert ended.runtime_status is ot.OrchestrationStatus.TERMINATED
        assert client.purge_orchestration(instance_id).deleted_instance_count == 1
        assert client.get_orchestration_state(instance_id) is None
