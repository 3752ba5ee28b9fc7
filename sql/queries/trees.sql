-- What the indexer writes: whole show trees, movies, and the identity of requested titles.

-- name: upsert_show_trees
-- Upsert whole show trees (shows, seasons, episodes) in one round trip; unchanged rows are not written.
-- $1 now timestamptz, $2..$13 show columns, $14..$18 season columns, $19..$24 episode columns
SELECT show_id, tmdb_id, created, children_inserted, children_updated
FROM riven_upsert_show_trees(
    $1::timestamptz,
    $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
    $8::show_status[], $9::float8[], $10::float8[], $11::float8[], $12::text[], $13::text[],
    $14::bigint[], $15::bigint[], $16::text[], $17::date[], $18::text[],
    $19::bigint[], $20::bigint[], $21::bigint[], $22::text[], $23::float8[], $24::date[]
);

-- name: upsert_movies
-- Insert or update movies by tmdb id; a bare request becomes unreleased until release_due.
-- $1 now timestamptz, $2 tmdb bigint[], $3 tvdb bigint[], $4 imdb text[], $5 titles text[], $6 years bigint[], $7 released_at float8[], $8 release_date date[], $9 next_check_at float8[], $10 fingerprints text[]
SELECT item_id, tmdb_id, created
FROM riven_upsert_movies($1::timestamptz, $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                         $6::bigint[], $7::float8[], $8::date[], $9::float8[], $10::text[]);

-- name: adopt_identity
-- Make one row the title the ids name, merging bare requests for it; returns its id or NULL.
-- $1 item bigint, $2 kind media_kind, $3 tmdb integer, $4 tvdb integer, $5 imdb text, $6 tvmaze integer
SELECT riven_adopt_identity($1::bigint, $2::media_kind, $3::integer, $4::integer, $5::text,
                            $6::integer);

-- name: existing_shows
-- Which of these tmdb ids are shows already (a plain read: import_show_trees picks its path).
-- $1 tmdb_ids integer[]
SELECT tmdb_id FROM items WHERE kind = 'show' AND tmdb_id = ANY ($1::integer[]);

-- name: set_release_due
-- Set when new shows next have an episode to release (after a COPY import): no read of items.
-- $1 show_ids bigint[], $2 release_due_at float8[]
UPDATE items i SET release_due_at = to_timestamp(n.at)
FROM unnest($1::bigint[], $2::float8[]) AS n(id, at)
WHERE i.id = n.id AND i.kind = 'show';

-- name: season_fingerprints
-- The stored seasons of one show with their fingerprints (the indexer skips unchanged ones).
-- $1 show_id bigint
SELECT season_number, fingerprint FROM items WHERE show_id = $1::bigint AND kind = 'season';
