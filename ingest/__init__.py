"""mesh-ingest: Kafka-to-PostgreSQL telemetry ingestion for mesh networks, exactly once."""

__version__ = "0.1.0"
