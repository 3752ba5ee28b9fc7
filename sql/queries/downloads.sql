-- Torrents in debrid accounts: reserved before the add, so no torrent is added twice.

-- name: reserve
-- The live download of (service, infohash), reserved ('adding') for item $1 if there is none.
-- $1 item_id bigint, $2 service text, $3 infohash text
WITH created AS (
    -- A concurrent reservation that wins leaves nothing here and is not visible below
    -- (same snapshot): the repository asks again in a new statement.
    INSERT INTO downloads (item_id, service, infohash)
    VALUES ($1::bigint, $2::text, $3::text)
    ON CONFLICT (service, infohash) WHERE status IN ('adding', 'downloading', 'ready')
    DO NOTHING
    RETURNING *
)
SELECT c.*, true AS created FROM created c
UNION ALL
SELECT d.*, false FROM downloads d
WHERE d.service = $2::text AND d.infohash = $3::text
  AND d.status IN ('adding', 'downloading', 'ready')
  AND NOT EXISTS (SELECT 1 FROM created);

-- name: mark_added
-- The service accepted the torrent: remember its id and the files chosen in it.
-- $1 id bigint, $2 torrent_id text, $3 selected_files jsonb
UPDATE downloads
SET status = 'downloading', torrent_id = $2::text, selected_files = $3::jsonb,
    updated_at = now(), error = NULL
WHERE id = $1::bigint AND status IN ('adding', 'downloading')
RETURNING *;

-- name: mark_ready
-- The service has the files: the download is ready to link.
-- $1 id bigint
UPDATE downloads
SET status = 'ready', ready_at = now(), updated_at = now(), error = NULL
WHERE id = $1::bigint AND status IN ('adding', 'downloading', 'ready')
RETURNING *;

-- name: mark_failed
-- The add failed (not cached, 451, stuck): free the (service, infohash) slot, keep the reason.
-- $1 id bigint, $2 error text
UPDATE downloads
SET status = 'failed', error = $2::text, updated_at = now()
WHERE id = $1::bigint AND status IN ('adding', 'downloading', 'ready')
RETURNING *;

-- name: mark_removed
-- The torrents were deleted from their accounts.
-- $1 ids bigint[]
UPDATE downloads SET status = 'removed', updated_at = now()
WHERE id = ANY ($1::bigint[]) AND status <> 'removed'
RETURNING id;

-- name: get_many
-- Downloads by id.
-- $1 ids bigint[]
SELECT * FROM downloads WHERE id = ANY ($1::bigint[]) ORDER BY id;

-- name: for_items
-- The downloads made for some items, newest first.
-- $1 item_ids bigint[]
SELECT * FROM downloads WHERE item_id = ANY ($1::bigint[]) ORDER BY item_id, id DESC;

-- name: live_for_infohashes
-- The live downloads of a service among these torrents (to reuse one already in the account).
-- $1 service text, $2 infohashes text[]
SELECT * FROM downloads
WHERE service = $1::text AND infohash = ANY ($2::text[])
  AND status IN ('adding', 'downloading', 'ready')
ORDER BY id;

-- name: waiting
-- Downloads of a service still adding or downloading, untouched since $2, oldest first.
-- $1 service text, $2 before timestamptz, $3 limit integer
SELECT * FROM downloads
WHERE service = $1::text AND status IN ('adding', 'downloading')
  AND updated_at < $2::timestamptz
ORDER BY updated_at
LIMIT $3::integer;

-- name: record_ready
-- A live download holds the files now: ready, with its torrent id; the files chosen are merged with those already recorded for the same torrent (another episode of a pack), replaced for another torrent.
-- $1 id bigint, $2 torrent_id text, $3 selected_files jsonb
UPDATE downloads d
SET status = 'ready', torrent_id = $2::text,
    selected_files = CASE
        WHEN d.torrent_id IS DISTINCT FROM $2::text THEN $3::jsonb
        ELSE (SELECT COALESCE(jsonb_agg(DISTINCT f.value), '[]'::jsonb)
              FROM jsonb_array_elements(d.selected_files || $3::jsonb) AS f)
    END,
    ready_at = CASE WHEN d.status = 'ready' AND d.torrent_id IS NOT DISTINCT FROM $2::text
                    THEN d.ready_at ELSE now() END,
    updated_at = now(), error = NULL
WHERE d.id = $1::bigint AND d.status IN ('adding', 'downloading', 'ready')
RETURNING *;

-- name: live_on_services
-- The live downloads of these torrents on any of these services (reuse before asking a service).
-- $1 services text[], $2 infohashes text[]
SELECT * FROM downloads
WHERE service = ANY ($1::text[]) AND infohash = ANY ($2::text[])
  AND status IN ('adding', 'downloading', 'ready')
ORDER BY id;

-- name: record_checks
-- Remember what services said when asked to add these hashes (the latest answer per service, hash and item; times from the daemon's clock).
-- $1 services text[], $2 infohashes text[], $3 item_ids bigint[], $4 outcomes text[], $5 reasons text[], $6 checked_at timestamptz[]
INSERT INTO debrid_checks (service, infohash, item_id, outcome, reason, checked_at)
-- One row per key, the latest: ON CONFLICT DO UPDATE may not touch a row twice.
SELECT DISTINCT ON (c.infohash, c.service, c.item_id)
       c.service, c.infohash, c.item_id, c.outcome, c.reason, c.checked_at
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
            $6::timestamptz[]) AS c (service, infohash, item_id, outcome, reason, checked_at)
ORDER BY c.infohash, c.service, c.item_id, c.checked_at DESC
ON CONFLICT (infohash, service, item_id)
DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason,
              checked_at = EXCLUDED.checked_at;

-- name: prune_checks
-- Forget up to $2 debrid answers given before $1 (older than any retry interval reads).
-- $1 before timestamptz, $2 limit integer
WITH gone AS (
    DELETE FROM debrid_checks
    WHERE ctid IN (SELECT ctid FROM debrid_checks WHERE checked_at < $1::timestamptz
                   LIMIT $2::integer)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: recent_checks
-- Answers given after $4 about these hashes on these services, for every item or for item $3.
-- $1 services text[], $2 infohashes text[], $3 item_id bigint, $4 since timestamptz
SELECT * FROM debrid_checks
WHERE infohash = ANY ($2::text[]) AND service = ANY ($1::text[])
  AND (item_id IS NULL OR item_id = $3::bigint)
  AND checked_at > $4::timestamptz
ORDER BY infohash, service, checked_at;
