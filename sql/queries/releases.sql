-- Releases found by scrapers, ranked per item, and the per-item blacklist.

-- name: insert_many
-- Store releases found for items (one statement); known ones get their rank, seeders and seen_at refreshed.
-- $1 item_ids bigint[], $2 infohashes text[], $3 raw_titles text[], $4 ranks integer[], $5 scrapers text[], $6 parsed jsonb[], $7 sizes bigint[], $8 seeders integer[], $9 cached_on text[], $10 now timestamptz
INSERT INTO releases AS r (item_id, infohash, raw_title, rank, scraper, parsed, size_bytes,
                           seeders, cached_on, found_at, seen_at)
SELECT n.item_id, n.infohash, n.raw_title, n.rank, n.scraper, n.parsed, n.size_bytes,
       n.seeders, n.cached_on::text[], $10::timestamptz, $10::timestamptz
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::jsonb[],
            $7::bigint[], $8::integer[], $9::text[])
    AS n(item_id, infohash, raw_title, rank, scraper, parsed, size_bytes, seeders, cached_on)
WHERE NOT EXISTS (SELECT 1 FROM release_blacklist b
                  WHERE b.item_id = n.item_id AND b.infohash = n.infohash)
ORDER BY n.item_id, n.infohash
ON CONFLICT (item_id, infohash) DO UPDATE SET
    rank = EXCLUDED.rank,
    seeders = COALESCE(EXCLUDED.seeders, r.seeders),
    size_bytes = COALESCE(EXCLUDED.size_bytes, r.size_bytes),
    cached_on = ARRAY(SELECT DISTINCT unnest(r.cached_on || EXCLUDED.cached_on) ORDER BY 1),
    seen_at = EXCLUDED.seen_at
RETURNING (r.xmax = 0) AS created;

-- name: best_for_items
-- The best $2 releases of each item, blacklisted ones left out, best first.
-- $1 item_ids bigint[], $2 per_item integer
SELECT best.*
FROM unnest($1::bigint[]) AS wanted(item_id)
CROSS JOIN LATERAL (
    SELECT r.* FROM releases r
    WHERE r.item_id = wanted.item_id
      AND NOT EXISTS (SELECT 1 FROM release_blacklist b
                      WHERE b.item_id = r.item_id AND b.infohash = r.infohash)
    ORDER BY r.rank DESC, r.id
    LIMIT $2::integer
) AS best
ORDER BY best.item_id, best.rank DESC, best.id;

-- name: by_infohashes
-- Every stored release of these torrents, whichever item each was found for.
-- $1 infohashes text[]
SELECT * FROM releases WHERE infohash = ANY ($1::text[]) ORDER BY infohash, item_id;

-- name: blacklist_many
-- Never use these releases for these items again; their stored rows go too.
-- $1 item_ids bigint[], $2 infohashes text[], $3 reasons text[]
WITH listed AS (
    INSERT INTO release_blacklist (item_id, infohash, reason)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
    ORDER BY 1, 2
    ON CONFLICT (item_id, infohash) DO NOTHING
    RETURNING item_id, infohash
), dropped AS (
    DELETE FROM releases r
    USING unnest($1::bigint[], $2::text[]) AS n(item_id, infohash)
    WHERE r.item_id = n.item_id AND r.infohash = n.infohash
)
SELECT count(*) FROM listed;

-- name: blacklist_for
-- The blacklist entries of some items.
-- $1 item_ids bigint[]
SELECT item_id, infohash, reason, created_at
FROM release_blacklist
WHERE item_id = ANY ($1::bigint[])
ORDER BY item_id, created_at;

-- name: prune_keep_best
-- Keep only the best $2 releases of each item; returns how many were deleted.
-- $1 item_ids bigint[], $2 keep integer
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY item_id ORDER BY rank DESC, id) AS place
    FROM releases
    WHERE item_id = ANY ($1::bigint[])
), gone AS (
    DELETE FROM releases WHERE id IN (SELECT id FROM ranked WHERE place > $2::integer)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: season_status
-- A season's row and its episodes (season first), each with its state, air time, last scrape and how many usable releases it has.
-- $1 show_id bigint, $2 season_number integer
SELECT i.id, i.episode_number, i.state, i.aired_at, i.scraped_at,
       (SELECT count(*) FROM releases r
        WHERE r.item_id = i.id
          AND NOT EXISTS (SELECT 1 FROM release_blacklist b
                          WHERE b.item_id = r.item_id AND b.infohash = r.infohash)
       )::integer AS releases
FROM items i
WHERE i.show_id = $1::bigint AND i.season_number = $2::integer
ORDER BY i.episode_number NULLS FIRST;
