-- Reading items: by id or external id, a whole tree, keyset pages, title search.
-- Pages are keyset-paginated (never OFFSET): each takes the last row's sort key. Pages and
-- searches return the summary columns only (rows.item_summary): decoding and mapping the
-- full row was two thirds of a page's time.

-- name: get_many
-- Items by id.
-- $1 ids bigint[]
SELECT * FROM items WHERE id = ANY ($1::bigint[]) ORDER BY id;

-- name: find_roots
-- Movies or shows that any of the given external ids names.
-- $1 kind media_kind, $2 tmdb integer, $3 tvdb integer, $4 imdb text, $5 tvmaze integer
SELECT * FROM items
WHERE kind = $1::media_kind
  AND (tmdb_id = $2::integer OR tvdb_id = $3::integer OR imdb_id = $4::text
       OR tvmaze_id = $5::integer)
ORDER BY id;

-- name: tree
-- One item with everything below it, each node with its best non-blacklisted releases.
-- $1 id bigint, $2 releases_per_item integer
WITH root AS (
    SELECT * FROM items WHERE id = $1::bigint
), nodes AS (
    -- The root, then a show's seasons and episodes or a season's episodes (tree index).
    SELECT r.* FROM root r
    UNION ALL
    SELECT c.* FROM root r JOIN items c ON r.kind = 'show' AND c.show_id = r.id
    UNION ALL
    SELECT c.* FROM root r
    JOIN items c ON r.kind = 'season' AND c.show_id = r.show_id
                AND c.season_number = r.season_number AND c.kind = 'episode'
)
SELECT n.*, best.*
FROM nodes n
-- Each node's releases as parallel arrays: half the server time of one jsonb document
-- per node, and asyncpg decodes arrays natively. (A composite array cannot be decoded
-- once jsonb has a text codec, and cached_on is joined because arrays must be regular.)
LEFT JOIN LATERAL (
    SELECT array_agg(b.id) AS release_ids, array_agg(b.infohash) AS release_infohashes,
           array_agg(b.raw_title) AS release_titles, array_agg(b.rank) AS release_ranks,
           array_agg(b.scraper) AS release_scrapers, array_agg(b.parsed) AS release_parsed,
           array_agg(b.size_bytes) AS release_sizes, array_agg(b.seeders) AS release_seeders,
           array_agg(array_to_string(b.cached_on, ',')) AS release_cached_on,
           array_agg(b.found_at) AS release_found_at, array_agg(b.seen_at) AS release_seen_at
    FROM (SELECT r.* FROM releases r
          WHERE r.item_id = n.id
            AND NOT EXISTS (SELECT 1 FROM release_blacklist x
                            WHERE x.item_id = r.item_id AND x.infohash = r.infohash)
          ORDER BY r.rank DESC, r.id
          LIMIT $2::integer) AS b
) AS best ON true
ORDER BY n.id = $1::bigint DESC, n.season_number NULLS FIRST, n.episode_number NULLS FIRST;

-- name: page
-- Items in id order after id $1.
-- $1 after_id bigint, $2 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error
FROM items WHERE id > $1::bigint ORDER BY id LIMIT $2::integer;

-- name: page_by_kind
-- Movies, shows or seasons (one kind) in id order after id $2.
-- $1 kind media_kind, $2 after_id bigint, $3 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error
FROM items
WHERE kind = $1::media_kind AND kind <> 'episode' AND id > $2::bigint
ORDER BY id
LIMIT $3::integer;

-- name: page_episodes
-- Episodes in id order after id $1 (most rows are episodes: the primary key serves).
-- $1 after_id bigint, $2 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error
FROM items
WHERE kind = 'episode' AND id > $1::bigint
ORDER BY id
LIMIT $2::integer;

-- name: page_by_state
-- Items in one state (of the kinds $2), longest in it first, after the cursor ($3, $4).
-- $1 state item_state, $2 kinds media_kind[], $3 after_changed_at timestamptz, $4 after_id bigint, $5 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error
FROM items
WHERE state = $1::item_state AND kind = ANY ($2::media_kind[])
  AND (state_changed_at, id) > ($3::timestamptz, $4::bigint)
ORDER BY state_changed_at, id
LIMIT $5::integer;

-- name: search_page
-- Movies and shows whose title contains $1 (any case), filtered, in id order after id $4.
-- $1 text text, $2 kinds media_kind[], $3 states item_state[], $4 after_id bigint, $5 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error
FROM items
WHERE kind IN ('movie', 'show')
  AND title ILIKE '%' || replace(replace(replace($1::text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
  AND kind = ANY ($2::media_kind[]) AND state = ANY ($3::item_state[]) AND id > $4::bigint
ORDER BY id
LIMIT $5::integer;

-- name: search_titles
-- Movies and shows ranked by how well a word sequence of their title matches $1 (trigrams).
-- $1 text text, $2 limit integer
SELECT id, kind, title, state, state_changed_at, tmdb_id, tvdb_id, imdb_id, tvmaze_id, show_id,
       season_number, episode_number, year, aired_at, last_error,
       word_similarity($1::text, title) AS score
FROM items
WHERE kind IN ('movie', 'show') AND $1::text <% title
ORDER BY score DESC, id
LIMIT $2::integer;

-- name: known_requests
-- For each requested title: the movie or show it names (NULL: none yet), and whether one stored request already asks for as much (the whole show, or at least those seasons).
-- $1 kinds media_kind[], $2 tmdb integer[], $3 tvdb integer[], $4 imdb text[], $5 tvmaze integer[], $6 seasons text[]
WITH input AS (
    SELECT * FROM unnest($1::media_kind[], $2::integer[], $3::integer[], $4::text[],
                         $5::integer[], $6::text[])
        WITH ORDINALITY AS r(kind, tmdb_id, tvdb_id, imdb_id, tvmaze_id, seasons, ord)
), found AS (
    -- The row request_many would pick: the oldest one any of the ids names.
    SELECT r.ord, r.seasons::integer[] AS seasons,
        (SELECT i.id FROM items i
         WHERE i.kind = r.kind
           AND (i.tmdb_id = r.tmdb_id OR i.tvdb_id = r.tvdb_id OR i.imdb_id = r.imdb_id
                OR i.tvmaze_id = r.tvmaze_id)
         ORDER BY i.id LIMIT 1) AS item_id
    FROM input r
)
SELECT f.ord, f.item_id,
    f.item_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM requests q
        WHERE q.item_id = f.item_id
          AND (q.requested_seasons IS NULL
               OR (f.seasons IS NOT NULL AND f.seasons <@ q.requested_seasons))
    ) AS covered
FROM found f
ORDER BY f.ord;
