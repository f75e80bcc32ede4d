"""The push bridge pushes an SQL deployment no more deliveries at once than its pool holds
(decision 0054); a deployment without SQL, or one the catalog does not know, gets 8."""

from emulators._bridge import IN_FLIGHT, in_flight_for
from shared.manifests import catalog


def test_sql_consumers_get_their_pool_others_the_default() -> None:
    deps = catalog().deployments
    assert deps["auth-on-user-event"].uses_sql
    assert in_flight_for("auth-on-user-event") == deps["auth-on-user-event"].db_pool
    assert in_flight_for("maintenance-on-user-event") == deps["maintenance-on-user-event"].db_pool
    assert in_flight_for("auth-on-user-event") < IN_FLIGHT
    assert not deps["audit-ingest"].uses_sql
    assert in_flight_for("audit-ingest") == IN_FLIGHT
    assert in_flight_for("bench-bare") == IN_FLIGHT  # not a manifest deployment


def test_the_bridge_limit_caps_the_pool() -> None:
    assert in_flight_for("auth-on-user-event", most=1) == 1
    assert in_flight_for("audit-ingest", most=3) == 3
