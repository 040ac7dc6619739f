"""Starts one instance at an agreed moment (for the cross-process reuse-id test).

usage: create_process.py DB INSTANCE_ID START_AT_EPOCH_SECONDS
Prints ``created`` or ``exists``.
"""

from __future__ import annotations

import sys
import time

import ostinato as ot
from ostinato.sqlite import SqliteProvider

db, instance_id, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
client = ot.Client(SqliteProvider(db))
client.provider.setup()
time.sleep(max(0.0, start_at - time.time()))
try:
    client.schedule_new_orchestration("singleton", instance_id=instance_id)
    print("created", flush=True)
except ot.InstanceAlreadyExistsError:
    print("exists", flush=True)
