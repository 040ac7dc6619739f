"""``FileProvider``: an ostinato storage provider on plain files, written against the public
contract only (``ostinato.provider``), as a worked example of a custom provider.

Layout of a task hub directory::

    hub.lock                     taken with fcntl.flock around every call (all processes)
    instances/<sha256 of id>.json  one file per instance: record, history, inbox, lock
    activities/<ordered name>.json one file per activity task, with its lock

Every call runs under the hub lock and writes whole files atomically (temp file +
``os.replace``), so each call is one atomic step and checkpoints are transactional. It
scans directories to find work, so it suits tests and small deployments, not throughput.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ostinato import history
from ostinato.errors import InstanceAlreadyExistsError, WorkItemLockLost
from ostinato.history import HistoryEvent
from ostinato.provider import (
    ActivityTask,
    ActivityWorkItem,
    InstanceQuery,
    InstanceRecord,
    OrchestrationCheckpoint,
    OrchestrationMessage,
    OrchestrationWorkItem,
    Page,
    ProviderCapabilities,
    ReuseIdPolicy,
    StorageProvider,
    Work,
    decode_failure,
    encode_failure,
    new_lock_token,
)
from ostinato.status import OrchestrationStatus

Json = dict[str, Any]


def _record_to_json(record: InstanceRecord) -> Json:
    return {
        "instance_id": record.instance_id,
        "name": record.name,
        "execution_id": record.execution_id,
        "runtime_status": record.runtime_status.value,
        "created_at": record.created_at.isoformat(),
        "last_updated_at": record.last_updated_at.isoformat(),
        "input": record.input,
        "output": record.output,
        "custom_status": record.custom_status,
        "failure_details": encode_failure(record.failure_details),
        "parent_instance_id": record.parent_instance_id,
        "history_size": record.history_size,
    }


def _record_from_json(data: Json) -> InstanceRecord:
    return InstanceRecord(
        instance_id=data["instance_id"],
        name=data["name"],
        execution_id=data["execution_id"],
        runtime_status=OrchestrationStatus(data["runtime_status"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        last_updated_at=datetime.fromisoformat(data["last_updated_at"]),
        input=data["input"],
        output=data["output"],
        custom_status=data["custom_status"],
        failure_details=decode_failure(data["failure_details"]),
        parent_instance_id=data["parent_instance_id"],
        history_size=data["history_size"],
    )


class FileProvider(StorageProvider):
    """A task hub in a directory of JSON files (see the module docstring)."""

    capabilities = ProviderCapabilities(
        transactional_checkpoints=True, max_payload_bytes=None, multi_process=True
    )

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._instances = self.directory / "instances"
        self._activities = self.directory / "activities"
        self._thread_lock = threading.RLock()

    # -- plumbing -----------------------------------------------------------------------------
    def setup(self) -> None:
        self._instances.mkdir(parents=True, exist_ok=True)
        self._activities.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _hub(self) -> Iterator[None]:
        """The hub lock: one thread of one process at a time."""
        with self._thread_lock, open(self.directory / "hub.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _path(self, instance_id: str) -> Path:
        digest = hashlib.sha256(instance_id.encode("utf-8")).hexdigest()
        return self._instances / f"{digest}.json"

    @staticmethod
    def _read(path: Path) -> Json | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    @staticmethod
    def _write(path: Path, data: Json) -> None:
        fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(temp, path)

    def _load(self, instance_id: str) -> Json:
        """The instance file's data (a blank one if there is no file yet)."""
        return self._read(self._path(instance_id)) or {
            "instance_id": instance_id,
            "record": None,
            "history": [],
            "inbox": [],
            "next_seq": 0,
            "lock": None,
        }

    def _save(self, data: Json) -> None:
        path = self._path(data["instance_id"])
        if data["record"] is None and not data["inbox"] and data["lock"] is None:
            path.unlink(missing_ok=True)
        else:
            self._write(path, data)

    @staticmethod
    def _enqueue(data: Json, message: OrchestrationMessage) -> None:
        visible_at = message.visible_at.isoformat() if message.visible_at else None
        data["inbox"].append(
            {"seq": data["next_seq"], "message": message.to_json(), "visible_at": visible_at}
        )
        data["next_seq"] += 1

    @staticmethod
    def _lock_is_live(lock: Json | None, now: datetime) -> bool:
        return lock is not None and datetime.fromisoformat(lock["expires"]) > now

    def _all_instances(self) -> Iterator[Json]:
        for path in sorted(self._instances.glob("*.json")):
            data = self._read(path)
            if data is not None:
                yield data

    # -- client side --------------------------------------------------------------------------
    def create_instance(
        self, record: InstanceRecord, start: OrchestrationMessage, policy: ReuseIdPolicy
    ) -> None:
        with self._hub():
            data = self._load(record.instance_id)
            existing = data["record"]
            if existing is not None:
                status = OrchestrationStatus(existing["runtime_status"])
                if status not in policy.replaceable_statuses:
                    raise InstanceAlreadyExistsError(record.instance_id, status)
                data["history"] = []
                data["inbox"] = []
                data["lock"] = None  # a worker still holding the old run loses its lock
            data["record"] = _record_to_json(record)
            self._enqueue(data, start)
            self._save(data)
        self.changes.notify(work=Work.of_messages([start]))

    def send_message(self, message: OrchestrationMessage) -> None:
        with self._hub():
            data = self._load(message.instance_id)
            self._enqueue(data, message)
            self._save(data)
        self.changes.notify(work=Work.of_messages([message]))

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._hub():
            record = self._load(instance_id)["record"]
        return None if record is None else _record_from_json(record)

    def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._hub():
            events = self._load(instance_id)["history"]
        return [history.loads(text) for text in events]

    def query_instances(self, query: InstanceQuery) -> Page[InstanceRecord]:
        with self._hub():
            records = [_record_from_json(d["record"]) for d in self._all_instances() if d["record"]]
        after = query.continuation_token
        matching = sorted(
            (r for r in records if query.matches(r) and (after is None or r.instance_id > after)),
            key=lambda r: r.instance_id,
        )
        page = matching[: query.page_size]
        token = page[-1].instance_id if len(matching) > query.page_size else None
        return Page(items=page, continuation_token=token)

    def purge_instance(
        self, instance_id: str, only_if_status: Collection[OrchestrationStatus]
    ) -> bool:
        with self._hub():
            data = self._load(instance_id)
            record = data["record"]
            if (
                record is None
                or OrchestrationStatus(record["runtime_status"]) not in only_if_status
            ):
                return False
            self._path(instance_id).unlink(missing_ok=True)
            for path in self._activities.glob("*.json"):
                activity = self._read(path)
                if activity and ActivityTask.from_json(activity["task"]).instance_id == instance_id:
                    path.unlink(missing_ok=True)
            return True

    # -- orchestration work items -------------------------------------------------------------
    def lock_next_orchestration_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> OrchestrationWorkItem | None:
        with self._hub():
            now = self.now()
            for data in self._all_instances():
                if self._lock_is_live(data["lock"], now):
                    continue
                visible = [
                    m
                    for m in data["inbox"]
                    if m["visible_at"] is None or datetime.fromisoformat(m["visible_at"]) <= now
                ]
                if not visible:
                    continue
                token = new_lock_token()
                data["lock"] = {
                    "token": token,
                    "expires": (now + lock_timeout).isoformat(),
                    "seqs": [m["seq"] for m in visible],
                }
                # Deliveries since the last completed step (the core's poison policy reads it).
                data["deliveries"] = data.get("deliveries", 0) + 1
                self._save(data)
                record = data["record"]
                return OrchestrationWorkItem(
                    instance_id=data["instance_id"],
                    messages=[OrchestrationMessage.from_json(m["message"]) for m in visible],
                    instance=_record_from_json(record) if record else None,
                    lock_token=token,
                    locked_until=now + lock_timeout,
                    dequeue_count=data["deliveries"],
                )
        return None

    def _held(self, item: OrchestrationWorkItem) -> Json:
        """The instance data if ``item`` still holds its lock, else ``WorkItemLockLost``."""
        data = self._load(item.instance_id)
        lock = data["lock"]
        if (
            lock is None
            or lock["token"] != item.lock_token
            or not self._lock_is_live(lock, self.now())
        ):
            raise WorkItemLockLost(f"Lock on instance '{item.instance_id}' was lost")
        return data

    def complete_orchestration_work_item(
        self, item: OrchestrationWorkItem, checkpoint: OrchestrationCheckpoint
    ) -> None:
        with self._hub():
            data = self._held(item)
            consumed = set(data["lock"]["seqs"])
            data["inbox"] = [m for m in data["inbox"] if m["seq"] not in consumed]
            data["lock"] = None
            data["deliveries"] = 0
            if checkpoint.reset_history:
                data["history"] = []
            data["history"].extend(history.dumps(e) for e in checkpoint.new_history)
            if checkpoint.instance is not None:
                data["record"] = _record_to_json(checkpoint.instance)
            outbound = [m for m in checkpoint.messages if m.instance_id != item.instance_id]
            for message in checkpoint.messages:
                if message.instance_id == item.instance_id:
                    self._enqueue(data, message)
            self._save(data)
            for message in outbound:
                other = self._load(message.instance_id)
                self._enqueue(other, message)
                self._save(other)
            for task in checkpoint.activity_tasks:
                self._add_activity(task)
        self.changes.notify(work=Work.of_checkpoints([checkpoint]))

    def abandon_orchestration_work_item(
        self, item: OrchestrationWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._hub():
            data = self._held(item)
            data["deliveries"] -= 1  # an abandoned delivery is given back, not counted
            if delay:
                # Keep the instance locked (by no one) until the delay is over.
                data["lock"] = {
                    "token": "",
                    "expires": (self.now() + delay).isoformat(),
                    "seqs": [],
                }
            else:
                data["lock"] = None
            self._save(data)
        self.changes.notify(work=Work.TIMERS if delay else Work.ORCHESTRATIONS)

    def renew_orchestration_work_item_lock(
        self, item: OrchestrationWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._hub():
            data = self._held(item)
            expires = self.now() + lock_timeout
            data["lock"]["expires"] = expires.isoformat()
            self._save(data)
        item.locked_until = expires

    # -- activity work items ------------------------------------------------------------------
    def _add_activity(self, task: ActivityTask) -> None:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        self._write(
            self._activities / name, {"task": task.to_json(), "lock": None, "visible_at": None}
        )

    def lock_next_activity_work_item(
        self, worker_id: str, lock_timeout: timedelta
    ) -> ActivityWorkItem | None:
        with self._hub():
            now = self.now()
            for path in sorted(self._activities.glob("*.json")):
                data = self._read(path)
                if data is None or self._lock_is_live(data["lock"], now):
                    continue
                if data["visible_at"] and datetime.fromisoformat(data["visible_at"]) > now:
                    continue
                token = new_lock_token()
                data["lock"] = {"token": token, "expires": (now + lock_timeout).isoformat()}
                data["deliveries"] = data.get("deliveries", 0) + 1
                self._write(path, data)
                return ActivityWorkItem(
                    task=ActivityTask.from_json(data["task"]),
                    lock_token=token,
                    locked_until=now + lock_timeout,
                    dequeue_count=data["deliveries"],
                    provider_data=path.name,
                )
        return None

    def _held_activity(self, item: ActivityWorkItem) -> tuple[Path, Json]:
        path = self._activities / str(item.provider_data)
        data = self._read(path)
        lock = data["lock"] if data else None
        if (
            data is None
            or lock is None
            or lock["token"] != item.lock_token
            or not (self._lock_is_live(lock, self.now()))
        ):
            raise WorkItemLockLost(f"Lock on activity task {item.task.name!r} was lost")
        return path, data

    def complete_activity_work_item(
        self, item: ActivityWorkItem, result: OrchestrationMessage
    ) -> None:
        with self._hub():
            path, _ = self._held_activity(item)
            data = self._load(result.instance_id)
            self._enqueue(data, result)
            self._save(data)
            path.unlink()
        self.changes.notify(work=Work.of_messages([result]))

    def abandon_activity_work_item(
        self, item: ActivityWorkItem, delay: timedelta | None = None
    ) -> None:
        with self._hub():
            path, data = self._held_activity(item)
            data["lock"] = None
            data["deliveries"] -= 1  # an abandoned delivery is given back, not counted
            data["visible_at"] = (self.now() + delay).isoformat() if delay else None
            self._write(path, data)
        self.changes.notify(work=Work.ACTIVITIES)

    def renew_activity_work_item_lock(
        self, item: ActivityWorkItem, lock_timeout: timedelta
    ) -> None:
        with self._hub():
            path, data = self._held_activity(item)
            expires = self.now() + lock_timeout
            data["lock"]["expires"] = expires.isoformat()
            self._write(path, data)
        item.locked_until = expires
