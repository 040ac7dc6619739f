"""The PostgreSQL provider's engine-neutral tests, run unchanged against SQL Server.

They are the same functions (imported, not copied); here the ``provider`` and
``make_provider`` fixtures of tests/mssql/conftest.py give them SQL Server task hubs.
"""

from __future__ import annotations

from postgres.test_postgres_provider import (  # noqa: F401 - collected by pytest
    test_abandon_hands_messages_out_again,
    test_activity_lock_renew_and_loss,
    test_concurrent_setup_of_a_new_hub,
    test_expired_lock_is_taken_and_the_stale_worker_loses,
    test_large_payloads_round_trip,
    test_lock_complete_and_double_complete,
    test_purge_of_many_instances_in_bounded_batches,
    test_query_paging_returns_each_instance_once_in_id_order,
    test_renewal_keeps_the_lock,
    test_skip_locked_claims_distinct_instances_concurrently,
    test_timer_message_is_not_handed_out_early,
    test_twenty_concurrent_starts_make_one_instance,
)
from postgres.test_postgres_scenarios import (  # noqa: F401 - collected by pytest
    test_1_hello_cities_and_its_history,
    test_3_eternal_orchestration_keeps_its_history_bounded,
    test_6_course_recommendations_round_trip_composite_inputs,
    test_7_external_event_and_timeout,
    test_7_fan_out_fan_in,
    test_7_retries_recover_and_give_up,
    test_7_sub_orchestrations,
)
