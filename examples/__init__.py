"""Runnable sample apps for the scenarios of DESIGN §5 (import them as ``examples.<name>``).

Each module has an ``app`` that a worker serves::

    ostinato worker examples.hello_cities:app      # terminal 1
    ostinato start hello_cities --wait             # terminal 2

and a ``main()`` that runs the scenario end to end in one process
(``python -m examples.hello_cities``). With no configuration both use SQLite in
``./ostinato.db``; see docs/configuration.md for other providers.

| module | scenario |
|---|---|
| ``hello_cities`` | 1. three sequential activities (function chaining) |
| ``eternal`` | 3. a periodic job: durable timer + ``continue_as_new``, bounded history |
| ``course_recommendations`` | 6. tuple and dataclass inputs through the data converter |
| ``fan_out_fan_in`` | 7. parallel activities, ``when_all`` |
| ``sub_orchestrations`` | 7. a parent orchestration running child orchestrations |
| ``human_interaction`` | 7. an external event raced against a durable timer (``when_any``) |
| ``retries`` | 7. ``RetryPolicy`` with backoff, and handling the final failure |
"""
