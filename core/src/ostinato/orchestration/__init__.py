"""The orchestration floor: pure replay of orchestrator, activity and entity code.

Tasks, contexts, the replay engine, outbound actions, entity batches and ``call_http`` live
here. Nothing in this package calls a storage provider or starts a thread; it imports only
the model floor (errors, status, ids, converter, retry, history, clock, the provider's record
types). The runtime floor (:mod:`ostinato.runtime`) drives it.
"""
