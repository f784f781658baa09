-- Scheduler bookkeeping beyond 0001 (see docs/scheduler.md).

-- Route-recompute work the routes job has taken over from ingest.route_marks but not finished.
--
-- Why a second table: the pipeline's flush upserts routing_entries and then inserts marks in
-- one transaction. If the routes job deleted marks and updated routing_entries in one
-- transaction, a flush could hold entry row locks while waiting on a mark the job deleted, and
-- the job wait on those entry rows: a deadlock. So the job moves the marks here in a short
-- transaction that touches nothing else, then recomputes from this table in a second one; a
-- failed recompute leaves its pairs here for the next run, so no mark is ever lost.
CREATE TABLE ingest.route_pending (
    node_id        uuid        NOT NULL,
    destination_id uuid        NOT NULL,
    moved_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, destination_id)
);
