-- Read-side views. A link carries traffic while it is active, degraded or congested; those are
-- the "active links" counted below (the same definition the snapshots job uses).

CREATE FUNCTION network.link_is_active(link_state text, terminated_at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT terminated_at IS NULL AND link_state IN ('active', 'degraded', 'congested')
$$;

-- One row per node: name, status, last_seen, seconds since seen, active links, mean link
-- quality, best routes.
CREATE VIEW network.realtime_status AS
SELECT n.node_id,
       n.node_name,
       n.node_type,
       n.role,
       n.status,
       n.last_seen,
       EXTRACT(EPOCH FROM (now() - n.last_seen))::double precision AS seconds_since_seen,
       COALESCE(l.active_links, 0)                                 AS active_links,
       l.mean_link_quality,
       COALESCE(r.best_routes, 0)                                  AS best_routes
FROM network.nodes n
LEFT JOIN LATERAL (
    SELECT count(*)::integer AS active_links, avg(ml.quality) AS mean_link_quality
    FROM network.mesh_links ml
    WHERE ml.local_node_id = n.node_id
      AND network.link_is_active(ml.link_state, ml.terminated_at)
) l ON true
LEFT JOIN LATERAL (
    SELECT count(*)::integer AS best_routes
    FROM network.routing_entries re
    WHERE re.node_id = n.node_id AND re.is_best_route
) r ON true;

-- Pool utilisation.
CREATE VIEW network.active_connections AS
SELECT p.pool_id,
       p.pool_name,
       p.node_id,
       n.node_name,
       p.status,
       p.min_connections,
       p.max_connections,
       p.current_connections,
       p.in_use_connections,
       CASE WHEN p.max_connections > 0
            THEN p.in_use_connections::double precision / p.max_connections END AS utilisation,
       COALESCE(c.open_connections, 0)   AS open_connections,
       COALESCE(c.active_connections, 0) AS active_connections,
       COALESCE(c.requests_handled, 0)   AS requests_handled,
       COALESCE(c.errors_count, 0)       AS errors_count
FROM network.connection_pools p
LEFT JOIN network.nodes n ON n.node_id = p.node_id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE cn.state <> 'closed')::integer AS open_connections,
           count(*) FILTER (WHERE cn.state = 'active')::integer  AS active_connections,
           sum(cn.requests_handled)::bigint                     AS requests_handled,
           sum(cn.errors_count)::bigint                         AS errors_count
    FROM network.connections cn
    WHERE cn.pool_id = p.pool_id
) c ON true;

-- Counts and means over nodes and links, one row.
CREATE VIEW network.network_health AS
SELECT nodes.total_nodes,
       nodes.active_nodes,
       nodes.disconnected_nodes,
       nodes.placeholder_nodes,
       links.total_links,
       links.active_links,
       links.mean_link_quality,
       links.mean_latency_ms,
       links.mean_packet_loss,
       routes.best_routes,
       now() AS computed_at
FROM (
    SELECT count(*)::integer                                        AS total_nodes,
           count(*) FILTER (WHERE status = 'active')::integer       AS active_nodes,
           count(*) FILTER (WHERE status = 'disconnected')::integer AS disconnected_nodes,
           count(*) FILTER (WHERE announced_at IS NULL)::integer    AS placeholder_nodes
    FROM network.nodes
) nodes,
(
    SELECT count(*)::integer AS total_links,
           count(*) FILTER (WHERE network.link_is_active(link_state, terminated_at))::integer
               AS active_links,
           avg(quality) FILTER (WHERE network.link_is_active(link_state, terminated_at))
               AS mean_link_quality,
           avg(latency_ms) FILTER (WHERE network.link_is_active(link_state, terminated_at))
               AS mean_latency_ms,
           avg(packet_loss) FILTER (WHERE network.link_is_active(link_state, terminated_at))
               AS mean_packet_loss
    FROM network.mesh_links
) links,
(
    SELECT count(*)::integer AS best_routes FROM network.routing_entries WHERE is_best_route
) routes;

-- Source, destination and next hop names with quality, hops, last_seen.
CREATE VIEW network.best_routes AS
SELECT re.entry_id,
       re.node_id        AS source_id,
       src.node_name     AS source_name,
       re.destination_id,
       dst.node_name     AS destination_name,
       re.next_hop_id,
       hop.node_name     AS next_hop_name,
       re.quality,
       re.hop_count,
       re.sequence_number,
       re.last_seen
FROM network.routing_entries re
JOIN network.nodes src ON src.node_id = re.node_id
JOIN network.nodes dst ON dst.node_id = re.destination_id
LEFT JOIN network.nodes hop ON hop.node_id = re.next_hop_id
WHERE re.is_best_route;
