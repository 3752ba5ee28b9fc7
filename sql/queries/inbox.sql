-- Received webhooks: persisted before the sender's 2xx, then claimed by the inbox worker.
-- The inbox keeps the server's clock throughout (received, available, leases).

-- name: insert_many
-- Persist received webhooks in one statement (group commit); returns those accepted, not retries of a recent one.
-- $1 sources text[], $2 events text[], $3 delivery_keys text[], $4 payloads text[], $5 intents text[], $6 window_s float8
INSERT INTO inbox AS b (source, event, delivery_key, payload, intents)
SELECT n.source, n.event, n.delivery_key, n.payload::jsonb, n.intents::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
    AS n(source, event, delivery_key, payload, intents)
ORDER BY n.source, n.delivery_key
ON CONFLICT (source, delivery_key) DO UPDATE SET
    event = EXCLUDED.event, payload = EXCLUDED.payload, intents = EXCLUDED.intents,
    received_at = now(), available_at = now(), processed_at = NULL, claimed_at = NULL,
    attempts = 0, error = NULL
-- Only a delivery done with and older than the retry window comes back as a new one
-- (a sender repeating an identical body on purpose); anything newer is a retry.
WHERE b.received_at < now() - make_interval(secs => $6::float8)
  AND b.processed_at IS NOT NULL
RETURNING b.id, b.source, b.delivery_key;

-- name: claim
-- Claim up to $2 received webhooks for process $1, oldest first; SKIP LOCKED so claimers never collide.
-- $1 claimed_by uuid, $2 limit integer
WITH next AS (
    SELECT id FROM inbox
    WHERE processed_at IS NULL AND claimed_by IS NULL AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $2::integer
    FOR UPDATE SKIP LOCKED
)
UPDATE inbox b
SET claimed_by = $1::uuid, claimed_at = now(), attempts = b.attempts + 1
FROM next
WHERE b.id = next.id
RETURNING b.*;

-- name: mark_processed
-- The worker turned these deliveries into their effects; returns the ids it still held.
-- $1 ids bigint[], $2 claimed_by uuid
UPDATE inbox
SET processed_at = now(), claimed_by = NULL, claimed_at = NULL, error = NULL
WHERE id = ANY ($1::bigint[]) AND claimed_by = $2::uuid
RETURNING id;

-- name: fail
-- Processing failed: retry after $4 s, or give up (kept with its error) after $5 attempts.
-- $1 id bigint, $2 claimed_by uuid, $3 error text, $4 retry_after_s float8, $5 max_attempts integer
UPDATE inbox
SET claimed_by = NULL, claimed_at = NULL, error = $3::text,
    processed_at = CASE WHEN attempts >= $5::integer THEN now() END,
    available_at = now() + make_interval(secs => $4::float8)
WHERE id = $1::bigint AND claimed_by = $2::uuid
RETURNING processed_at IS NOT NULL AS given_up;

-- name: release_own
-- Give back every claim of process $1 on a graceful stop; the attempt is not counted.
-- $1 claimed_by uuid
WITH released AS (
    UPDATE inbox
    SET claimed_by = NULL, claimed_at = NULL, attempts = GREATEST(attempts - 1, 0)
    WHERE claimed_by = $1::uuid
    RETURNING id
)
SELECT count(*) FROM released;

-- name: recover
-- Take back the claims of dead processes (stopped, or silent for $1 s); poison after $2 attempts.
-- $1 lease_s float8, $2 max_attempts integer
WITH live AS (
    SELECT boot_id FROM processes
    WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1::float8)
), released AS (
    UPDATE inbox
    SET claimed_by = NULL, claimed_at = NULL,
        processed_at = CASE WHEN attempts >= $2::integer THEN now() END,
        error = CASE WHEN attempts >= $2::integer
                     THEN 'its process died during each of ' || attempts || ' attempts'
                     ELSE error END
    WHERE claimed_by IS NOT NULL AND claimed_by NOT IN (SELECT boot_id FROM live)
    RETURNING processed_at
)
SELECT count(*) FILTER (WHERE processed_at IS NULL) AS requeued,
       count(*) FILTER (WHERE processed_at IS NOT NULL) AS given_up
FROM released;

-- name: get_many
-- Deliveries by id.
-- $1 ids bigint[]
SELECT * FROM inbox WHERE id = ANY ($1::bigint[]) ORDER BY id;

-- name: prune_processed
-- Delete up to $2 deliveries processed before $1 (retention); returns how many.
-- $1 before timestamptz, $2 limit integer
WITH gone AS (
    DELETE FROM inbox
    WHERE id IN (SELECT id FROM inbox
                 WHERE processed_at < $1::timestamptz
                 ORDER BY processed_at LIMIT $2::integer)
    RETURNING 1
)
SELECT count(*) FROM gone;
