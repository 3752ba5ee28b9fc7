-- Symlinks in the library: one per item, no two items on one path.

-- name: record_many
-- Record items' symlinks in one statement; an unchanged link is not written again.
-- $1 item_ids bigint[], $2 link_paths text[], $3 target_paths text[], $4 download_ids bigint[]
INSERT INTO library_entries AS e (item_id, link_path, target_path, download_id)
SELECT n.item_id, n.link_path, n.target_path, n.download_id
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
    AS n(item_id, link_path, target_path, download_id)
ORDER BY n.item_id
ON CONFLICT (item_id) DO UPDATE SET
    link_path = EXCLUDED.link_path,
    target_path = EXCLUDED.target_path,
    download_id = COALESCE(EXCLUDED.download_id, e.download_id),
    updated_at = now()
WHERE (e.link_path, e.target_path, e.download_id)
      IS DISTINCT FROM (EXCLUDED.link_path, EXCLUDED.target_path,
                        COALESCE(EXCLUDED.download_id, e.download_id))
RETURNING e.item_id, (e.xmax = 0) AS created;

-- name: for_items
-- The links of some items.
-- $1 item_ids bigint[]
SELECT * FROM library_entries WHERE item_id = ANY ($1::bigint[]) ORDER BY item_id;

-- name: by_link_paths
-- The entries at these library paths.
-- $1 link_paths text[]
SELECT * FROM library_entries WHERE link_path = ANY ($1::text[]) ORDER BY link_path;

-- name: page
-- Entries in id order after id $1 (the broken-link sweep walks the library with this).
-- $1 after_id bigint, $2 limit integer
SELECT * FROM library_entries WHERE id > $1::bigint ORDER BY id LIMIT $2::integer;

-- name: mark_verified
-- The links were checked on disk at $2 and are fine.
-- $1 ids bigint[], $2 at timestamptz
UPDATE library_entries SET verified_at = $2::timestamptz WHERE id = ANY ($1::bigint[]);

-- name: delete_for_items
-- Forget the links of some items (after removing them from disk); returns what was deleted.
-- $1 item_ids bigint[]
DELETE FROM library_entries WHERE item_id = ANY ($1::bigint[]) RETURNING *;
