-- Aggregates for /metrics, each answered from a maintained summary or an index, never a scan.

-- name: state_counts
-- Items per kind and state from the maintained summary (folding its rows when they pile up).
WITH folded AS (
    -- Replace the per-statement rows by one sum per (kind, state), once they pile up. The
    -- SELECT below reads the snapshot from before the fold, so nothing is counted twice,
    -- and a concurrent fold only skips the rows this one already took.
    DELETE FROM item_state_counts
    WHERE (SELECT count(*) FROM item_state_counts) > 256
    RETURNING kind, state, delta
), refolded AS (
    INSERT INTO item_state_counts (kind, state, delta)
    SELECT kind, state, sum(delta) FROM folded GROUP BY kind, state HAVING sum(delta) <> 0
)
SELECT kind, state, sum(delta)::bigint AS items
FROM item_state_counts
GROUP BY kind, state
HAVING sum(delta) <> 0
ORDER BY kind, state;

-- name: oldest_in_states
-- When the longest-waiting item of each state entered it (one index probe per state).
-- $1 states item_state[]
SELECT s.state, (SELECT min(i.state_changed_at) FROM items i WHERE i.state = s.state) AS since
FROM unnest($1::item_state[]) AS s(state);

-- name: job_counts
-- Jobs per kind: due now, waiting for later, running, failed for good.
-- $1 now timestamptz
SELECT k.kind,
       (SELECT count(*) FROM jobs j
        WHERE j.status = 'queued' AND j.kind = k.kind AND j.run_at <= $1::timestamptz) AS due,
       (SELECT count(*) FROM jobs j
        WHERE j.status = 'queued' AND j.kind = k.kind AND j.run_at > $1::timestamptz)
           AS scheduled,
       (SELECT count(*) FROM jobs j WHERE j.status = 'running' AND j.kind = k.kind) AS running,
       (SELECT count(*) FROM jobs j WHERE j.status = 'failed' AND j.kind = k.kind) AS failed
FROM unnest(enum_range(NULL::job_kind)) AS k(kind);

-- name: inbox_counts
-- Deliveries not processed yet: waiting, being processed, and the oldest one's arrival.
SELECT count(*) FILTER (WHERE claimed_by IS NULL) AS waiting,
       count(*) FILTER (WHERE claimed_by IS NOT NULL) AS claimed,
       min(received_at) AS oldest
FROM inbox
WHERE processed_at IS NULL;

-- name: shows_by_status
-- Shows per status (ongoing, ended, hiatus, unknown; NULL before the first index).
SELECT status, count(*) AS shows FROM items WHERE kind = 'show' GROUP BY status;

-- name: checks_due
-- Show and movie checks due now, within an hour and within a day of $1.
-- $1 now timestamptz
SELECT count(*) FILTER (WHERE next_check_at <= $1::timestamptz) AS now,
       count(*) FILTER (WHERE next_check_at <= $1::timestamptz + interval '1 hour') AS hour,
       count(*) AS day
FROM items
WHERE next_check_at <= $1::timestamptz + interval '1 day';

-- name: new_episodes
-- Episodes created in the last $1 seconds (server clock); notes older than $2 seconds are dropped.
-- $1 window_s float8, $2 keep_s float8
WITH pruned AS (
    DELETE FROM item_arrivals WHERE arrived_at < now() - make_interval(secs => $2::float8)
)
SELECT COALESCE(sum(items), 0)::bigint
FROM item_arrivals
WHERE kind = 'episode' AND arrived_at >= now() - make_interval(secs => $1::float8);

-- name: compact
-- Fold the state-count rows into one per pair and drop arrival notes older than $1 seconds (maintenance).
-- $1 keep_s float8
WITH folded AS (
    DELETE FROM item_state_counts RETURNING kind, state, delta
), refolded AS (
    INSERT INTO item_state_counts (kind, state, delta)
    SELECT kind, state, sum(delta) FROM folded GROUP BY kind, state HAVING sum(delta) <> 0
), pruned AS (
    DELETE FROM item_arrivals WHERE arrived_at < now() - make_interval(secs => $1::float8)
    RETURNING 1
)
SELECT (SELECT count(*) FROM folded) AS folded, (SELECT count(*) FROM pruned) AS pruned;

-- name: oldest_items
-- The longest-waiting item of each state (one index probe per state); NULL id when a state is empty.
-- $1 states item_state[]
SELECT s.state, o.id, o.kind, o.title, o.state_changed_at AS since
FROM unnest($1::item_state[]) AS s(state)
LEFT JOIN LATERAL (
    SELECT i.id, i.kind, i.title, i.state_changed_at
    FROM items i
    WHERE i.state = s.state
    ORDER BY i.state_changed_at, i.id
    LIMIT 1
) AS o ON true;

-- name: database_size
-- The size of the daemon's database on disk, in bytes.
SELECT pg_database_size(current_database());
