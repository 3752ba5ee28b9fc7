-- Received webhooks: persisted before the sender's 2xx, then claimed by the inbox worker.
-- The inbox keeps the server's clock throughout (received, available, leases).

-- name: insert_many
-- Persist received webhooks in one statement (group commit); returns those accepted, not retries of a recent one.
-- $1 sources text[], $2 events text[], $3 delivery_keys text[], $4 payloads text[], $5 intents text[], $6 window_s float8
INSERT INTO inbox AS b (source, event, delivery_key, payload, intents)
SELECT n.source, n.event, n.delivery_key, n.payload::json, n.intents::json
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

-- name: take
-- Take up to $1 waiting webhooks, oldest first, marking them processed in the caller's transaction:
-- their effects commit with the mark, and a rollback or a crash puts them back as they were.
-- SKIP LOCKED so concurrent takers never share one. claimed_by is never set (the index predicate).
-- The worker acts on the intents alone: the payload stays in the table (get_many reads it).
-- $1 limit integer
WITH next AS (
    SELECT id FROM inbox
    WHERE processed_at IS NULL AND claimed_by IS NULL AND available_at <= now()
    ORDER BY available_at, id
    LIMIT $1::integer
    FOR UPDATE SKIP LOCKED
)
UPDATE inbox b
SET processed_at = now(), attempts = b.attempts + 1, error = NULL
FROM next
WHERE b.id = next.id
RETURNING b.id, b.source, b.event, b.delivery_key, NULL::json AS payload, b.intents,
          b.received_at, b.attempts, b.error, b.processed_at;

-- name: take_ids
-- take for these deliveries only, those still waiting and not held by another taker.
-- $1 ids bigint[]
WITH next AS (
    SELECT id FROM inbox
    WHERE id = ANY ($1::bigint[]) AND processed_at IS NULL AND claimed_by IS NULL
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE inbox b
SET processed_at = now(), attempts = b.attempts + 1, error = NULL
FROM next
WHERE b.id = next.id
RETURNING b.id, b.source, b.event, b.delivery_key, NULL::json AS payload, b.intents,
          b.received_at, b.attempts, b.error, b.processed_at;

-- name: retry_later
-- Acting on a delivery failed (its take rolled back): retry after $3 s, or give up (kept with its error) at $4 attempts.
-- $1 id bigint, $2 error text, $3 retry_after_s float8, $4 max_attempts integer
UPDATE inbox
SET attempts = attempts + 1, error = $2::text,
    processed_at = CASE WHEN attempts + 1 >= $4::integer THEN now() END,
    available_at = now() + make_interval(secs => $3::float8)
WHERE id = $1::bigint AND processed_at IS NULL
RETURNING processed_at IS NOT NULL AS given_up;

-- name: record_errors
-- Note why taken deliveries had no effect (unreadable intents); they stay processed.
-- $1 ids bigint[], $2 errors text[]
UPDATE inbox b
SET error = e.error
FROM unnest($1::bigint[], $2::text[]) AS e(id, error)
WHERE b.id = e.id;

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
