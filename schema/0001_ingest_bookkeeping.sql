-- The worker's own bookkeeping. The migration runner creates ingest.schema_migrations itself
-- (it must exist before the first migration can be recorded).

CREATE SCHEMA IF NOT EXISTS ingest;

-- Next offset to read per (group, topic, partition). Advanced in the same transaction as the
-- rows it covers, with a compare-and-set on next_offset, so a consumer that lost a partition
-- cannot write over its successor.
CREATE TABLE ingest.consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text,
    PRIMARY KEY (group_id, topic, partition)
);

-- Everything that could not be stored: exactly one row per bad record (or array element).
CREATE TABLE ingest.dead_letters (
    dead_letter_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id        text        NOT NULL,
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    element_index   integer,
    reason          text        NOT NULL CHECK (reason IN (
                        'invalid_json', 'invalid_envelope', 'unknown_kind',
                        'unsupported_version', 'validation_failed', 'timestamp_in_future',
                        'timestamp_too_old', 'too_large', 'conflict', 'rejected_by_database')),
    detail          text        NOT NULL,
    kind            text,
    event_id        text,
    key             bytea,
    payload         bytea,
    received_at     timestamptz NOT NULL DEFAULT now(),
    replay_attempts integer     NOT NULL DEFAULT 0,
    last_replay_at  timestamptz,
    last_replay_error text
);
CREATE INDEX dead_letters_reason_received_idx ON ingest.dead_letters (reason, received_at);
CREATE INDEX dead_letters_position_idx ON ingest.dead_letters (topic, partition, "offset");

-- One row per scheduler job run.
CREATE TABLE ingest.job_runs (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text        NOT NULL,
    replica     text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text        NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'ok', 'failed', 'skipped')),
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error       text
);
CREATE INDEX job_runs_job_started_idx ON ingest.job_runs (job, started_at DESC);

-- Job leases: which replica may run a job, until when, under which epoch. The epoch fences a
-- replica whose lease expired while it was still working.
CREATE TABLE ingest.job_leases (
    job          text        PRIMARY KEY,
    holder       text        NOT NULL,
    epoch        bigint      NOT NULL DEFAULT 1,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_run_at  timestamptz
);

-- (node, destination) pairs whose best route must be recomputed, marked by the pipeline on
-- every route advert and consumed by the routes job.
CREATE TABLE ingest.route_marks (
    node_id        uuid        NOT NULL,
    destination_id uuid        NOT NULL,
    marked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, destination_id)
);

-- Partitions this project created. Retention only ever drops partitions listed here, so a
-- partition (or foreign table) attached by someone else is never touched.
CREATE TABLE ingest.managed_partitions (
    parent_table    text        NOT NULL,
    partition_table text        NOT NULL PRIMARY KEY,
    range_from      timestamptz NOT NULL,
    range_to        timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (range_to > range_from)
);
CREATE INDEX managed_partitions_parent_idx ON ingest.managed_partitions (parent_table, range_from);
