"""The runtime floor: the processor, activity execution and the worker.

This is the only worker-side caller of a :class:`~ostinato.provider.StorageProvider`. It
drives the pure orchestration floor (:mod:`ostinato.orchestration`) and is driven by the
client, the CLI and the HTTP API above it.
"""
