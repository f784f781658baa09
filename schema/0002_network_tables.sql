-- The network schema the applications read. Table and column names and meanings follow the
-- product specification; departures in types are explained in schema/README.md.
--
-- Conventions:
-- * State tables (latest value per key) keep UUID keys and foreign keys. A row whose required
--   descriptive columns are NULL is a placeholder: a parent referenced before it announced
--   itself. Its announcement fills it in.
-- * observed_at / announced_at hold the event time of the state stored in the row; an upsert
--   only replaces the row when the incoming event is newer.
-- * Time-series tables are range-partitioned on their time column, have bigint ids from a
--   cached sequence, no foreign keys and no secondary indexes: COPY is the hot path.

CREATE SCHEMA IF NOT EXISTS network;

CREATE FUNCTION network.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- State tables
-- ---------------------------------------------------------------------------------------------

CREATE TABLE network.nodes (
    node_id      uuid        PRIMARY KEY,
    node_name    varchar(255) UNIQUE CHECK (length(node_name) >= 1),
    node_type    text        NOT NULL DEFAULT 'peer'
                 CHECK (node_type IN ('peer', 'relay', 'gateway', 'bootstrap')),
    role         text        NOT NULL DEFAULT 'peer'
                 CHECK (role IN ('peer', 'super_peer', 'relay', 'gateway', 'bootstrap',
                                 'coordinator', 'witness')),
    address      text,
    port         integer     CHECK (port BETWEEN 1 AND 65535),
    public_key   text,
    capabilities jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status       text        NOT NULL DEFAULT 'connecting'
                 CHECK (status IN ('active', 'inactive', 'connecting', 'disconnected',
                                   'quarantined')),
    last_seen    timestamptz,
    announced_at timestamptz,
    status_at    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- An announced node has its name, address and port; a placeholder has none of them.
    CHECK ((announced_at IS NULL) OR (node_name IS NOT NULL AND address IS NOT NULL
                                      AND port IS NOT NULL))
);
CREATE INDEX nodes_last_seen_idx ON network.nodes (last_seen);
CREATE TRIGGER nodes_touch_updated_at BEFORE UPDATE ON network.nodes
    FOR EACH ROW EXECUTE FUNCTION network.touch_updated_at();

CREATE TABLE network.mesh_topologies (
    topology_id              uuid        PRIMARY KEY,
    mesh_name                text        CHECK (length(mesh_name) >= 1),
    topology_type            text        NOT NULL DEFAULT 'adaptive_hybrid'
                             CHECK (topology_type IN ('full_mesh', 'partial_mesh',
                                    'dynamic_partial', 'hierarchical', 'small_world',
                                    'scale_free', 'quantum_inspired', 'neural_mesh',
                                    'adaptive_hybrid')),
    configuration            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    optimization_enabled     boolean     NOT NULL DEFAULT true,
    learning_rate            double precision,
    connectivity_threshold   double precision
                             CHECK (connectivity_threshold BETWEEN 0 AND 1),
    max_connections_per_node integer     CHECK (max_connections_per_node >= 1),
    status                   text        NOT NULL DEFAULT 'active',
    observed_at              timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER mesh_topologies_touch_updated_at BEFORE UPDATE ON network.mesh_topologies
    FOR EACH ROW EXECUTE FUNCTION network.touch_updated_at();

CREATE TABLE network.mesh_links (
    link_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    topology_id    uuid        NOT NULL REFERENCES network.mesh_topologies (topology_id),
    local_node_id  uuid        NOT NULL REFERENCES network.nodes (node_id),
    remote_node_id uuid        NOT NULL REFERENCES network.nodes (node_id),
    link_state     text        NOT NULL DEFAULT 'active'
                   CHECK (link_state IN ('establishing', 'active', 'degraded', 'congested',
                                         'failing', 'dormant', 'quarantined')),
    quality        double precision CHECK (quality BETWEEN 0 AND 1),
    latency_ms     double precision CHECK (latency_ms >= 0),
    bandwidth_mbps double precision CHECK (bandwidth_mbps >= 0),
    packet_loss    double precision CHECK (packet_loss BETWEEN 0 AND 1),
    jitter_ms      double precision CHECK (jitter_ms >= 0),
    weight         double precision,
    last_probe     timestamptz NOT NULL,
    established_at timestamptz NOT NULL,
    terminated_at  timestamptz,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT mesh_links_unique UNIQUE (topology_id, local_node_id, remote_node_id),
    CHECK (local_node_id <> remote_node_id)
);
CREATE INDEX mesh_links_local_idx ON network.mesh_links (local_node_id);
CREATE INDEX mesh_links_remote_idx ON network.mesh_links (remote_node_id);

CREATE TABLE network.routing_entries (
    entry_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    node_id         uuid        NOT NULL REFERENCES network.nodes (node_id),
    destination_id  uuid        NOT NULL REFERENCES network.nodes (node_id),
    next_hop_id     uuid        REFERENCES network.nodes (node_id),
    sequence_number bigint      NOT NULL CHECK (sequence_number >= 0),
    quality         double precision NOT NULL CHECK (quality BETWEEN 0 AND 1),
    hop_count       integer     NOT NULL DEFAULT 1 CHECK (hop_count >= 0),
    flags           integer     NOT NULL DEFAULT 0,
    last_seen       timestamptz NOT NULL,
    is_best_route   boolean     NOT NULL DEFAULT false,
    -- A NULL next hop (a direct route) counts as one value: at most one direct route per pair.
    CONSTRAINT routing_entries_unique
        UNIQUE NULLS NOT DISTINCT (node_id, destination_id, next_hop_id)
);
-- At most one best route per (node, destination), enforced by the database.
CREATE UNIQUE INDEX routing_entries_one_best_idx
    ON network.routing_entries (node_id, destination_id) WHERE is_best_route;
CREATE INDEX routing_entries_last_seen_idx ON network.routing_entries (last_seen);
CREATE INDEX routing_entries_destination_idx ON network.routing_entries (destination_id);

CREATE TABLE network.connection_pools (
    pool_id             uuid        PRIMARY KEY,
    node_id             uuid        REFERENCES network.nodes (node_id),
    pool_name           text        CHECK (length(pool_name) >= 1),
    min_connections     integer     CHECK (min_connections >= 0),
    max_connections     integer     CHECK (max_connections >= 1),
    current_connections integer     CHECK (current_connections >= 0),
    in_use_connections  integer     CHECK (in_use_connections >= 0),
    keepalive_timeout   integer     CHECK (keepalive_timeout >= 0),
    enable_http2        boolean,
    status              text        NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'draining', 'stopped')),
    observed_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connection_pools_node_idx ON network.connection_pools (node_id);

CREATE TABLE network.connections (
    connection_id    uuid        PRIMARY KEY,
    pool_id          uuid        NOT NULL REFERENCES network.connection_pools (pool_id),
    endpoint         text        NOT NULL,
    protocol         text        NOT NULL DEFAULT 'http/1.1'
                     CHECK (protocol IN ('http/1.1', 'http/2', 'http/3', 'websocket')),
    state            text        NOT NULL DEFAULT 'idle'
                     CHECK (state IN ('idle', 'active', 'closing', 'closed')),
    requests_handled bigint      NOT NULL DEFAULT 0 CHECK (requests_handled >= 0),
    bytes_sent       bigint      NOT NULL DEFAULT 0 CHECK (bytes_sent >= 0),
    bytes_received   bigint      NOT NULL DEFAULT 0 CHECK (bytes_received >= 0),
    errors_count     bigint      NOT NULL DEFAULT 0 CHECK (errors_count >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    closed_at        timestamptz,
    observed_at      timestamptz NOT NULL
);
CREATE INDEX connections_pool_idx ON network.connections (pool_id);

CREATE TABLE network.optimization_params (
    param_id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    node_id                   uuid        NOT NULL REFERENCES network.nodes (node_id),
    param_set_name            text        NOT NULL CHECK (length(param_set_name) >= 1),
    batch_size                integer     CHECK (batch_size >= 1),
    compression_algorithm     text
                              CHECK (compression_algorithm IN ('none', 'gzip', 'lz4', 'brotli',
                                                               'snappy', 'zstd')),
    connection_pool_size      integer     CHECK (connection_pool_size >= 1),
    retry_strategy            text
                              CHECK (retry_strategy IN ('exponential', 'linear', 'fixed',
                                                        'adaptive')),
    max_retries               integer     CHECK (max_retries >= 0),
    circuit_breaker_threshold double precision
                              CHECK (circuit_breaker_threshold BETWEEN 0 AND 1),
    adaptive_learning_enabled boolean,
    metadata                  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    active_since              timestamptz,
    observed_at               timestamptz NOT NULL,
    CONSTRAINT optimization_params_unique UNIQUE (node_id, param_set_name)
);

CREATE TABLE network.batch_configs (
    config_id          uuid        PRIMARY KEY,
    node_id            uuid        REFERENCES network.nodes (node_id),
    max_batch_size     integer     CHECK (max_batch_size >= 1),
    max_wait_time_ms   integer     CHECK (max_wait_time_ms >= 0),
    priority_threshold double precision CHECK (priority_threshold BETWEEN 0 AND 1),
    adaptive_sizing    boolean,
    observed_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE network.dns_cache (
    cache_id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    hostname     text        NOT NULL CHECK (length(hostname) >= 1),
    ip_addresses inet[]      NOT NULL CHECK (cardinality(ip_addresses) >= 1),
    record_type  text        NOT NULL DEFAULT 'A'
                 CHECK (record_type IN ('A', 'AAAA', 'CNAME', 'SRV')),
    ttl          integer     NOT NULL DEFAULT 300 CHECK (ttl >= 0),
    cached_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT dns_cache_unique UNIQUE (hostname, record_type)
);
CREATE INDEX dns_cache_expires_idx ON network.dns_cache (expires_at);

CREATE TABLE network.service_registry (
    service_id        uuid        PRIMARY KEY,
    service_name      text        NOT NULL CHECK (length(service_name) >= 1),
    service_type      text        NOT NULL CHECK (length(service_type) >= 1),
    endpoints         text[]      NOT NULL CHECK (cardinality(endpoints) >= 1),
    health_check_url  text,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    last_health_check timestamptz NOT NULL,
    health_status     text        NOT NULL DEFAULT 'unknown'
                      CHECK (health_status IN ('healthy', 'unhealthy', 'degraded', 'unknown'))
);

CREATE TABLE network.topology_optimizations (
    optimization_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    topology_id            uuid,
    optimization_type      text        NOT NULL
                           CHECK (optimization_type IN ('automatic', 'manual', 'scheduled',
                                                        'triggered')),
    algorithm_used         text,
    metrics_before         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metrics_after          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    improvement_percentage double precision,
    execution_time_ms      double precision CHECK (execution_time_ms >= 0),
    success                boolean     NOT NULL,
    error_message          text,
    performed_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX topology_optimizations_performed_idx
    ON network.topology_optimizations (performed_at);

-- ---------------------------------------------------------------------------------------------
-- Time-series tables: range-partitioned, append only. Partitions are created by the
-- partitions module (ingest/partitions.py), never by a default partition: see schema/README.md.
-- ---------------------------------------------------------------------------------------------

CREATE SEQUENCE network.metrics_metric_id_seq AS bigint CACHE 1000;
CREATE TABLE network.metrics (
    metric_id    bigint      NOT NULL DEFAULT nextval('network.metrics_metric_id_seq'),
    node_id      uuid        NOT NULL,
    metric_type  varchar(100) NOT NULL CHECK (length(metric_type) >= 1),
    metric_name  varchar(255) NOT NULL CHECK (length(metric_name) >= 1),
    metric_value double precision NOT NULL
                 CHECK (metric_value > '-Infinity' AND metric_value < 'Infinity'),
    unit         varchar(50),
    tags         jsonb,
    recorded_at  timestamptz NOT NULL
) PARTITION BY RANGE (recorded_at);
ALTER SEQUENCE network.metrics_metric_id_seq OWNED BY network.metrics.metric_id;

CREATE SEQUENCE network.events_event_id_seq AS bigint CACHE 1000;
CREATE TABLE network.events (
    event_id    bigint      NOT NULL DEFAULT nextval('network.events_event_id_seq'),
    node_id     uuid        NOT NULL,
    event_type  text        NOT NULL CHECK (length(event_type) >= 1),
    event_name  text        NOT NULL CHECK (length(event_name) >= 1),
    severity    text        NOT NULL DEFAULT 'info'
                CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    description text,
    metadata    jsonb,
    occurred_at timestamptz NOT NULL
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE network.events_event_id_seq OWNED BY network.events.event_id;

CREATE SEQUENCE network.routing_metrics_metric_id_seq AS bigint CACHE 1000;
CREATE TABLE network.routing_metrics (
    metric_id    bigint      NOT NULL DEFAULT nextval('network.routing_metrics_metric_id_seq'),
    entry_id     uuid        NOT NULL,
    metric_type  text        NOT NULL
                 CHECK (metric_type IN ('latency', 'bandwidth', 'packet_loss', 'jitter',
                                        'quality', 'hop_count')),
    metric_value double precision NOT NULL,
    recorded_at  timestamptz NOT NULL
) PARTITION BY RANGE (recorded_at);
ALTER SEQUENCE network.routing_metrics_metric_id_seq OWNED BY network.routing_metrics.metric_id;

CREATE SEQUENCE network.compression_stats_stat_id_seq AS bigint CACHE 1000;
CREATE TABLE network.compression_stats (
    stat_id               bigint      NOT NULL
                          DEFAULT nextval('network.compression_stats_stat_id_seq'),
    node_id               uuid        NOT NULL,
    algorithm             text        NOT NULL
                          CHECK (algorithm IN ('none', 'gzip', 'lz4', 'brotli', 'snappy',
                                               'zstd')),
    messages_compressed   bigint      CHECK (messages_compressed >= 0),
    original_bytes        bigint      CHECK (original_bytes >= 0),
    compressed_bytes      bigint      CHECK (compressed_bytes >= 0),
    compression_time_ms   bigint      CHECK (compression_time_ms >= 0),
    decompression_time_ms bigint      CHECK (decompression_time_ms >= 0),
    period_start          timestamptz NOT NULL,
    period_end            timestamptz NOT NULL,
    CHECK (period_end >= period_start)
) PARTITION BY RANGE (period_start);
ALTER SEQUENCE network.compression_stats_stat_id_seq OWNED BY network.compression_stats.stat_id;

CREATE SEQUENCE network.batch_metrics_metric_id_seq AS bigint CACHE 1000;
CREATE TABLE network.batch_metrics (
    metric_id          bigint      NOT NULL
                       DEFAULT nextval('network.batch_metrics_metric_id_seq'),
    config_id          uuid        NOT NULL,
    total_batches      bigint      CHECK (total_batches >= 0),
    total_messages     bigint      CHECK (total_messages >= 0),
    average_batch_size double precision CHECK (average_batch_size >= 0),
    priority_bypasses  bigint      CHECK (priority_bypasses >= 0),
    queue_overflows    bigint      CHECK (queue_overflows >= 0),
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL,
    CHECK (period_end >= period_start)
) PARTITION BY RANGE (period_start);
ALTER SEQUENCE network.batch_metrics_metric_id_seq OWNED BY network.batch_metrics.metric_id;

CREATE SEQUENCE network.performance_snapshots_snapshot_id_seq AS bigint CACHE 100;
CREATE TABLE network.performance_snapshots (
    snapshot_id            bigint      NOT NULL
                           DEFAULT nextval('network.performance_snapshots_snapshot_id_seq'),
    topology_id            uuid        NOT NULL,
    total_nodes            integer     NOT NULL CHECK (total_nodes >= 0),
    total_links            integer     NOT NULL CHECK (total_links >= 0),
    average_latency        double precision,
    network_diameter       integer     CHECK (network_diameter >= 0),
    clustering_coefficient double precision CHECK (clustering_coefficient BETWEEN 0 AND 1),
    connectivity_ratio     double precision CHECK (connectivity_ratio BETWEEN 0 AND 1),
    fault_tolerance_score  double precision CHECK (fault_tolerance_score BETWEEN 0 AND 1),
    load_balance_index     double precision CHECK (load_balance_index BETWEEN 0 AND 1),
    partition_resilience   double precision CHECK (partition_resilience BETWEEN 0 AND 1),
    quantum_coherence      double precision,
    snapshot_time          timestamptz NOT NULL
) PARTITION BY RANGE (snapshot_time);
ALTER SEQUENCE network.performance_snapshots_snapshot_id_seq
    OWNED BY network.performance_snapshots.snapshot_id;
-- Snapshots are few and read by topology and time; the index costs nothing at their rate.
CREATE INDEX performance_snapshots_topology_idx
    ON network.performance_snapshots (topology_id, snapshot_time);
