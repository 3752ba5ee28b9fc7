-- The durable job queue, and the process registry whose boot ids the claims carry.
-- Due times ($now, run_at) are the daemon's clock; heartbeats and leases the server's.

-- name: enqueue_many
-- Queue jobs; a key already queued becomes due sooner, a key running now runs once more after.
-- $1 kinds job_kind[], $2 item_ids bigint[], $3 dedupe_keys text[], $4 run_at timestamptz[], $5 priorities smallint[], $6 max_attempts integer[], $7 payloads jsonb[]
INSERT INTO jobs AS j (kind, item_id, dedupe_key, run_at, priority, max_attempts, payload)
SELECT n.kind, n.item_id, n.dedupe_key, n.run_at, n.priority, n.max_attempts, n.payload
FROM unnest($1::job_kind[], $2::bigint[], $3::text[], $4::timestamptz[], $5::smallint[],
            $6::integer[], $7::jsonb[])
    AS n(kind, item_id, dedupe_key, run_at, priority, max_attempts, payload)
-- Key order, so two overlapping batches lock the same rows in the same order.
ORDER BY n.dedupe_key
ON CONFLICT (dedupe_key) WHERE status <> 'failed' DO UPDATE SET
    -- A job held for a paused item (run_at infinity) stays held.
    run_at = CASE WHEN j.status = 'queued' AND j.run_at < 'infinity'
                  THEN LEAST(j.run_at, EXCLUDED.run_at) ELSE j.run_at END,
    rerun_at = CASE WHEN j.status = 'running'
                    THEN LEAST(COALESCE(j.rerun_at, EXCLUDED.run_at), EXCLUDED.run_at)
                    ELSE j.rerun_at END,
    priority = GREATEST(j.priority, EXCLUDED.priority)
RETURNING j.id, j.dedupe_key, (j.xmax = 0) AS created;

-- name: claim
-- Claim up to $3 due jobs of one kind for process $1; SKIP LOCKED so claimers never collide.
-- $1 claimed_by uuid, $2 kind job_kind, $3 limit integer, $4 now timestamptz
WITH next AS (
    -- Highest priority first, then the longest due. Rows another claimer has locked are
    -- skipped, not waited for. Jobs of paused items stay where they are.
    SELECT j.id FROM jobs j
    WHERE j.status = 'queued' AND j.kind = $2::job_kind AND j.run_at <= $4::timestamptz
      AND NOT EXISTS (SELECT 1 FROM items i WHERE i.id = j.item_id AND i.state = 'paused')
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $3::integer
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'running', claimed_by = $1::uuid, claimed_at = now(), attempts = j.attempts + 1
FROM next
WHERE j.id = next.id
RETURNING j.*;

-- name: complete
-- Finish a job this process holds and queue its follow-ups atomically; 0 if the claim was lost.
-- (A claim implies status 'running' by constraint; saying so would steer the planner to
-- jobs_running, which holds every claim of this process, instead of the primary key. A
-- key queued again while the job ran is queued anew by the jobs_rerun_on_delete trigger.)
-- $1 id bigint, $2 claimed_by uuid, $3 kinds job_kind[], $4 item_ids bigint[], $5 dedupe_keys text[], $6 run_at timestamptz[], $7 priorities smallint[], $8 max_attempts integer[], $9 payloads jsonb[]
WITH done AS (
    DELETE FROM jobs
    WHERE id = $1::bigint AND claimed_by = $2::uuid
    RETURNING id
), follow_ups AS (
    INSERT INTO jobs AS j (kind, item_id, dedupe_key, run_at, priority, max_attempts, payload)
    SELECT n.kind, n.item_id, n.dedupe_key, n.run_at, n.priority, n.max_attempts, n.payload
    FROM unnest($3::job_kind[], $4::bigint[], $5::text[], $6::timestamptz[], $7::smallint[],
                $8::integer[], $9::jsonb[])
        AS n(kind, item_id, dedupe_key, run_at, priority, max_attempts, payload)
    WHERE EXISTS (SELECT 1 FROM done)
    ORDER BY n.dedupe_key
    ON CONFLICT (dedupe_key) WHERE status <> 'failed' DO UPDATE SET
        run_at = CASE WHEN j.status = 'queued' AND j.run_at < 'infinity'
                      THEN LEAST(j.run_at, EXCLUDED.run_at) ELSE j.run_at END,
        rerun_at = CASE WHEN j.status = 'running'
                        THEN LEAST(COALESCE(j.rerun_at, EXCLUDED.run_at), EXCLUDED.run_at)
                        ELSE j.rerun_at END,
        priority = GREATEST(j.priority, EXCLUDED.priority)
)
SELECT count(*) FROM done;

-- name: complete_many
-- Finish jobs this process holds (no follow-ups); returns the ids finished.
-- $1 ids bigint[], $2 claimed_by uuid
DELETE FROM jobs
WHERE id = ANY ($1::bigint[]) AND claimed_by = $2::uuid
RETURNING id;

-- name: fail
-- A held job failed: queue it again at $4, or (attempts used up) fail it and its item.
-- $1 id bigint, $2 claimed_by uuid, $3 error text, $4 retry_at timestamptz
WITH failed AS (
    UPDATE jobs SET
        status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END::job_status,
        run_at = CASE WHEN attempts >= max_attempts THEN run_at ELSE $4::timestamptz END,
        finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
        claimed_by = NULL, claimed_at = NULL, rerun_at = NULL, last_error = $3::text
    WHERE id = $1::bigint AND claimed_by = $2::uuid
    RETURNING item_id, status, attempts, run_at
), item_failed AS (
    -- An exhausted job fails its item, which remembers its state for a retry.
    UPDATE items i
    SET resume_state = i.state, state = 'failed', last_error = $3::text,
        state_changed_at = now(), updated_at = now()
    FROM failed f
    WHERE f.status = 'failed' AND i.id = f.item_id AND i.state NOT IN ('failed', 'paused')
)
SELECT status, attempts, run_at FROM failed;

-- name: snooze
-- Requeue a held job at $3 without counting an attempt (nothing to do yet); $4 replaces its payload if given.
-- $1 id bigint, $2 claimed_by uuid, $3 run_at timestamptz, $4 payload jsonb
UPDATE jobs
SET status = 'queued', run_at = LEAST($3::timestamptz, COALESCE(rerun_at, $3::timestamptz)),
    rerun_at = NULL, attempts = 0, claimed_by = NULL, claimed_at = NULL,
    payload = COALESCE($4::jsonb, payload)
WHERE id = $1::bigint AND claimed_by = $2::uuid
RETURNING run_at;

-- name: release_own
-- Give back every claim of process $1 on a graceful stop: due again at once, attempt not counted.
-- $1 claimed_by uuid
WITH released AS (
    UPDATE jobs
    SET status = 'queued', claimed_by = NULL, claimed_at = NULL,
        attempts = GREATEST(attempts - 1, 0),
        run_at = LEAST(run_at, COALESCE(rerun_at, run_at)), rerun_at = NULL
    WHERE claimed_by = $1::uuid AND status = 'running'
    RETURNING kind
)
SELECT kind, count(*) AS released, pg_notify('riven_jobs', kind::text) AS notified
FROM released
GROUP BY kind;

-- name: release_orphans
-- Give back claims of process $1 that none of its workers runs (a claim whose reply was lost
-- when the connection broke): claimed before $3 and not among the running ids $2.
-- $1 claimed_by uuid, $2 running bigint[], $3 claimed_before timestamptz
WITH released AS (
    UPDATE jobs
    SET status = 'queued', claimed_by = NULL, claimed_at = NULL,
        attempts = GREATEST(attempts - 1, 0),
        run_at = LEAST(run_at, COALESCE(rerun_at, run_at)), rerun_at = NULL
    WHERE claimed_by = $1::uuid AND status = 'running'
      AND claimed_at < $3::timestamptz AND NOT (id = ANY ($2::bigint[]))
    RETURNING kind
)
SELECT kind, count(*) AS released, pg_notify('riven_jobs', kind::text) AS notified
FROM released
GROUP BY kind;

-- name: recover
-- Take back the claims of dead processes (stopped, or silent for $1 s): their jobs run again.
-- $1 lease_s float8, $2 now timestamptz
WITH live AS (
    SELECT boot_id FROM processes
    WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1::float8)
), released AS (
    -- The claim counted an attempt; a job whose process died on every attempt fails.
    UPDATE jobs j SET
        status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'
                      ELSE 'queued' END::job_status,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        last_error = CASE WHEN j.attempts >= j.max_attempts
                          THEN 'its process died during each of ' || j.attempts || ' attempts'
                          ELSE j.last_error END,
        run_at = LEAST(j.run_at, $2::timestamptz),
        claimed_by = NULL, claimed_at = NULL, rerun_at = NULL
    WHERE j.status = 'running' AND j.claimed_by NOT IN (SELECT boot_id FROM live)
    RETURNING j.kind, j.status, j.item_id, j.last_error
), item_failed AS (
    UPDATE items i
    SET resume_state = i.state, state = 'failed', last_error = r.last_error,
        state_changed_at = now(), updated_at = now()
    FROM released r
    WHERE r.status = 'failed' AND i.id = r.item_id AND i.state NOT IN ('failed', 'paused')
)
SELECT kind,
       count(*) FILTER (WHERE status = 'queued') AS requeued,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       pg_notify('riven_jobs', kind::text) AS notified
FROM released
GROUP BY kind;

-- name: next_due_at
-- When the next queued job of a kind is due (NULL if none), for the workers' sleep.
-- $1 kind job_kind
WITH RECURSIVE levels AS (
    -- The distinct priorities in the claim index, one index probe each (a loose index
    -- scan): min(run_at) over the whole kind would read every queued row instead.
    (SELECT priority FROM jobs
     WHERE status = 'queued' AND kind = $1::job_kind
     ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM jobs j
            WHERE j.status = 'queued' AND j.kind = $1::job_kind AND j.priority < l.priority
            ORDER BY j.priority DESC LIMIT 1)
    FROM levels l
    WHERE l.priority IS NOT NULL
)
SELECT min((SELECT j.run_at FROM jobs j
            WHERE j.status = 'queued' AND j.kind = $1::job_kind AND j.priority = l.priority
              AND j.run_at < 'infinity'
            ORDER BY j.priority DESC, j.run_at LIMIT 1))
FROM levels l
WHERE l.priority IS NOT NULL;

-- name: for_items
-- The jobs of some items (queued, running or failed), newest first.
-- $1 item_ids bigint[]
SELECT * FROM jobs WHERE item_id = ANY ($1::bigint[]) ORDER BY id DESC;

-- name: prune_failed
-- Delete up to $2 failed jobs that finished before $1; returns how many.
-- $1 before timestamptz, $2 limit integer
WITH gone AS (
    DELETE FROM jobs
    WHERE id IN (SELECT id FROM jobs
                 WHERE status = 'failed' AND finished_at < $1::timestamptz
                 ORDER BY finished_at LIMIT $2::integer)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: register_process
-- Register this process under a fresh boot id (or revive it); claims will carry the id.
-- $1 boot_id uuid, $2 hostname text, $3 pid integer
INSERT INTO processes (boot_id, hostname, pid)
VALUES ($1::uuid, $2::text, $3::integer)
ON CONFLICT (boot_id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL
RETURNING *;

-- name: heartbeat
-- Renew this process's lease; no row means it was declared dead and must stop claiming.
-- $1 boot_id uuid
UPDATE processes SET heartbeat_at = now()
WHERE boot_id = $1::uuid AND stopped_at IS NULL
RETURNING heartbeat_at;

-- name: mark_stopped
-- Declare processes stopped (ours on exit, or one found dead on this host at start-up).
-- $1 boot_ids uuid[]
UPDATE processes SET stopped_at = now()
WHERE boot_id = ANY ($1::uuid[]) AND stopped_at IS NULL
RETURNING boot_id;

-- name: list_processes
-- Every registered process, oldest first.
SELECT * FROM processes ORDER BY started_at, boot_id;

-- name: prune_processes
-- Forget processes stopped or silent since before $1 that hold no claims; returns how many.
-- $1 before timestamptz
WITH gone AS (
    DELETE FROM processes p
    WHERE p.heartbeat_at < $1::timestamptz
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.claimed_by = p.boot_id)
      AND NOT EXISTS (SELECT 1 FROM inbox b WHERE b.claimed_by = p.boot_id)
    RETURNING 1
)
SELECT count(*) FROM gone;
