"""Scenario 7, sub-orchestrations: provision many devices, each by its own orchestration.

The parent starts one child orchestration per device (in parallel, ``ot.when_all``), each with
a deterministic instance id derived from the parent's, and collects their results. A child is
a full orchestration: its own history, retries and status (``ostinato status <parent>:<device>``).

    ostinato worker examples.sub_orchestrations:app
    ostinato start provision_devices --input '["sensor-1", "sensor-2"]' --wait
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import ostinato as ot

app = ot.App()


@dataclass(frozen=True)
class Device:
    device_id: str
    api_key: str
    registered: bool


@app.activity
def create_device_key(ctx: ot.ActivityContext, device_id: str) -> str:
    """Issue an API key for a device."""
    return hashlib.sha256(f"key:{device_id}".encode()).hexdigest()[:16]


@app.activity
def register_device(ctx: ot.ActivityContext, device: Device) -> Device:
    """Record the device and its key in the device registry."""
    return Device(device.device_id, device.api_key, registered=True)


@app.orchestrator
def provision_device(ctx: ot.OrchestrationContext, device_id: str) -> Generator[Any, Any, Device]:
    """The child: provision one device in two steps."""
    api_key: str = yield ctx.call_activity(create_device_key, input=device_id)
    device: Device = yield ctx.call_activity(
        register_device, input=Device(device_id, api_key, registered=False)
    )
    return device


@app.orchestrator
def provision_devices(
    ctx: ot.OrchestrationContext, device_ids: list[str]
) -> Generator[Any, Any, list[dict[str, Any]]]:
    """The parent: one child orchestration per device, in parallel."""
    children = [
        ctx.call_sub_orchestrator(
            provision_device, input=device_id, instance_id=f"{ctx.instance_id}:{device_id}"
        )
        for device_id in device_ids
    ]
    devices: list[Device] = yield ot.when_all(children)
    return [
        {"device_id": d.device_id, "registered": d.registered, "api_key": d.api_key}
        for d in devices
    ]


def main(
    provider: ot.StorageProvider | None = None,
    *,
    device_ids: list[str] | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """Provision devices end to end; returns the parent's output and the children's statuses."""
    provider = provider or ot.provider_from_config()
    device_ids = device_ids or ["sensor-1", "sensor-2", "sensor-3"]
    client = ot.Client(provider)
    with ot.Worker(app, provider):
        instance_id = client.schedule_new_orchestration(provision_devices, input=device_ids)
        state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    children = {}
    for device_id in device_ids:
        child = client.get_orchestration_state(f"{instance_id}:{device_id}")
        children[device_id] = None if child is None else child.runtime_status.value
    return {"devices": ot.raise_if_failed(state).output, "children": children}


if __name__ == "__main__":
    print(main())
