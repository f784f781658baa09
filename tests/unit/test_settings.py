"""Settings: every variable from the environment, bad values named, secrets never shown."""

from __future__ import annotations

import pytest

from ingest.settings import SettingsError, load_settings, redact_url, settings_table


def test_defaults_match_the_fixed_names_ops_scripts_use() -> None:
    s = load_settings({})
    assert s.kafka.bootstrap_servers == "localhost:9092"
    assert s.group_id == "mesh-ingest"
    assert s.topic_prefix == "mesh."
    assert s.topics[0] == "mesh.nodes" and len(s.topics) == 9
    assert s.log_format == "json"
    names = {row.variable for row in settings_table()}
    assert {
        "INGEST_DATABASE_URL",
        "INGEST_KAFKA_BOOTSTRAP_SERVERS",
        "INGEST_GROUP_ID",
        "INGEST_TOPIC_PREFIX",
        "INGEST_HTTP_PORT",
        "INGEST_LOG_FORMAT",
    } <= names


@pytest.mark.parametrize(
    "variable", ["INGEST_DATABASE_URL", "DATABASE_URL", "NETWORK_DATABASE_URL"]
)
def test_the_database_url_is_read_from_each_accepted_variable(variable: str) -> None:
    s = load_settings({variable: "postgresql://u@db.example:5433/network"})
    assert s.database.dsn == "postgresql://u@db.example:5433/network"


def test_ingest_database_url_wins_over_the_legacy_names() -> None:
    s = load_settings(
        {"INGEST_DATABASE_URL": "postgresql://a@h/x", "DATABASE_URL": "postgresql://b@h/y"}
    )
    assert s.database.dsn == "postgresql://a@h/x"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INGEST_HTTP_PORT": "eighty"}, "INGEST_HTTP_PORT"),
        ({"INGEST_HTTP_PORT": "70000"}, "INGEST_HTTP_PORT"),
        ({"INGEST_LOG_FORMAT": "xml"}, "INGEST_LOG_FORMAT"),
        ({"INGEST_BATCH_MAX_ROWS": "0"}, "INGEST_BATCH_MAX_ROWS"),
        ({"INGEST_BATCH_MAX_AGE_MS": "soon"}, "INGEST_BATCH_MAX_AGE_MS"),
        ({"INGEST_KAFKA_AUTO_OFFSET_RESET": "middle"}, "INGEST_KAFKA_AUTO_OFFSET_RESET"),
        ({"INGEST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "INGEST_KAFKA_SASL_MECHANISM"),
        ({"INGEST_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "INGEST_KAFKA_SSL_CAFILE"),
        ({"DATABASE_URL": "mysql://root@h/db"}, "INGEST_DATABASE_URL"),
        ({"INGEST_PARTITION_METRICS_INTERVAL": "year"}, "INGEST_PARTITION_METRICS_INTERVAL"),
        ({"INGEST_SHUTDOWN_GRACE_S": "-1"}, "INGEST_SHUTDOWN_GRACE_S"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


def test_a_bad_setting_message_never_contains_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "INGEST_DATABASE_URL": "postgresql://u:hunter2@h/db",
                "INGEST_DATABASE_POOL_MIN_SIZE": "9",
                "INGEST_DATABASE_POOL_MAX_SIZE": "2",
            }
        )
    assert "hunter2" not in str(caught.value)
    assert "INGEST_DATABASE_POOL_MAX_SIZE" in str(caught.value)


def test_passwords_in_urls_are_redacted_for_printing() -> None:
    s = load_settings({"INGEST_DATABASE_URL": "postgresql://ingest:s3cret@db:5432/network"})
    assert s.database.redacted_url == "postgresql://ingest:***@db:5432/network"
    assert "s3cret" not in repr(s)
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_sasl_settings_are_accepted_when_complete() -> None:
    s = load_settings(
        {
            "INGEST_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "INGEST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "INGEST_KAFKA_SASL_USERNAME": "ingest",
            "INGEST_KAFKA_SASL_PASSWORD": "pw",
        }
    )
    assert s.kafka.sasl_password is not None
    assert "pw" not in repr(s.kafka)
