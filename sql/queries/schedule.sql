-- When shows and movies are checked again, and when aired episodes and movies become work.
-- All due times are the daemon's clock ($now), so a scaled clock works end to end.

-- name: reschedule_many
-- Set when shows or movies are next checked and their order among those due; returns the ids changed.
-- $1 ids bigint[], $2 next_check_at timestamptz[], $3 priorities smallint[]
UPDATE items i
SET next_check_at = n.next_check_at, check_priority = n.priority
FROM unnest($1::bigint[], $2::timestamptz[], $3::smallint[]) AS n(id, next_check_at, priority)
WHERE i.id = n.id AND i.kind IN ('movie', 'show')
  AND (i.next_check_at, i.check_priority) IS DISTINCT FROM (n.next_check_at, n.priority)
RETURNING i.id;

-- name: check_now
-- Make shows or movies due at $2 (unless due sooner) with at least priority $3; wakes the scheduler.
-- $1 ids bigint[], $2 now timestamptz, $3 priority smallint
WITH targets AS (
    SELECT id FROM items WHERE id = ANY ($1::bigint[]) AND kind IN ('movie', 'show')
), made_due AS (
    UPDATE items i
    SET next_check_at = LEAST(COALESCE(i.next_check_at, $2::timestamptz), $2::timestamptz),
        check_priority = GREATEST(i.check_priority, $3::smallint)
    FROM targets t
    WHERE i.id = t.id
      AND (i.next_check_at IS NULL OR i.next_check_at > $2::timestamptz
           OR i.check_priority < $3::smallint)
)
SELECT id FROM targets;

-- name: check_now_by_external_ids
-- Make the tracked titles these ids name due at $6; returns each input's item (NULL: not tracked).
-- $1 kinds media_kind[], $2 tmdb integer[], $3 tvdb integer[], $4 imdb text[], $5 tvmaze integer[], $6 now timestamptz, $7 priority smallint
WITH input AS (
    SELECT * FROM unnest($1::media_kind[], $2::integer[], $3::integer[], $4::text[],
                         $5::integer[])
        WITH ORDINALITY AS r(kind, tmdb_id, tvdb_id, imdb_id, tvmaze_id, ord)
), matched AS (
    SELECT r.ord,
        (SELECT i.id FROM items i
         WHERE i.kind = r.kind
           AND (i.tmdb_id = r.tmdb_id OR i.tvdb_id = r.tvdb_id OR i.imdb_id = r.imdb_id
                OR i.tvmaze_id = r.tvmaze_id)
         ORDER BY i.id LIMIT 1) AS item_id
    FROM input r
), made_due AS (
    UPDATE items i
    SET next_check_at = LEAST(COALESCE(i.next_check_at, $6::timestamptz), $6::timestamptz),
        check_priority = GREATEST(i.check_priority, $7::smallint)
    WHERE i.id IN (SELECT item_id FROM matched)
      AND (i.next_check_at IS NULL OR i.next_check_at > $6::timestamptz
           OR i.check_priority < $7::smallint)
)
SELECT ord, item_id FROM matched ORDER BY ord;

-- name: enqueue_due_checks
-- Turn up to $2 due checks into index jobs; each next check moves to $3, a safety net the indexer replaces.
-- $1 now timestamptz, $2 limit integer, $3 fallback_at timestamptz
WITH due AS (
    -- Rows locked by another scheduler pass are skipped, never checked twice.
    SELECT id, check_priority FROM items
    WHERE next_check_at <= $1::timestamptz
    ORDER BY check_priority DESC, next_check_at, id
    LIMIT $2::integer
    FOR UPDATE SKIP LOCKED
), pushed AS (
    UPDATE items i SET next_check_at = $3::timestamptz, check_priority = 0
    FROM due d
    WHERE i.id = d.id
    RETURNING i.id
), queued AS (
    INSERT INTO jobs AS j (kind, item_id, dedupe_key, run_at, priority)
    SELECT 'index', d.id, 'index:' || d.id, $1::timestamptz, d.check_priority
    FROM due d
    ORDER BY 'index:' || d.id
    ON CONFLICT (dedupe_key) WHERE status <> 'failed' DO UPDATE SET
        run_at = CASE WHEN j.status = 'queued' AND j.run_at < 'infinity'
                      THEN LEAST(j.run_at, EXCLUDED.run_at) ELSE j.run_at END,
        rerun_at = CASE WHEN j.status = 'running'
                        THEN LEAST(COALESCE(j.rerun_at, EXCLUDED.run_at), EXCLUDED.run_at)
                        ELSE j.rerun_at END,
        priority = GREATEST(j.priority, EXCLUDED.priority)
    RETURNING j.id
)
SELECT (SELECT count(*) FROM pushed) AS checks, (SELECT count(*) FROM queued) AS jobs;

-- name: next_check_at
-- The earliest scheduled check (NULL if none), for the scheduler's sleep.
SELECT min(next_check_at) FROM items WHERE next_check_at IS NOT NULL;

-- name: release_due
-- Aired movies and episodes (air time plus $2 s passed) become indexed, each with a scrape job.
-- Takes up to $3 shows (each with all its aired episodes) and $3 movies per call.
-- $1 now timestamptz, $2 delay_s float8, $3 limit integer, $4 priority smallint
WITH cutoff AS (
    SELECT $1::timestamptz - make_interval(secs => $2::float8) AS at
), shows AS (
    -- Shows with an episode due (items_release_due), locked so concurrent passes split.
    SELECT id FROM items
    WHERE release_due_at <= (SELECT at FROM cutoff)
    ORDER BY release_due_at
    LIMIT $3::integer
    FOR UPDATE SKIP LOCKED
), movies AS (
    SELECT id FROM items
    WHERE kind = 'movie' AND state = 'unreleased' AND aired_at <= (SELECT at FROM cutoff)
    ORDER BY aired_at
    LIMIT $3::integer
    FOR UPDATE SKIP LOCKED
), aired AS (
    SELECT e.id FROM items e JOIN shows s ON e.show_id = s.id
    WHERE e.kind = 'episode' AND e.state = 'unreleased' AND e.aired_at <= (SELECT at FROM cutoff)
    UNION ALL
    SELECT id FROM movies
), released AS (
    -- The state test is repeated here: a row changed meanwhile (paused, failed) is re-read
    -- under its row lock and left alone, not overwritten from this statement's snapshot.
    UPDATE items i SET state = 'indexed', state_changed_at = now(), updated_at = now()
    FROM aired a
    WHERE i.id = a.id AND i.state = 'unreleased'
    RETURNING i.id, i.show_id
), moved_on AS (
    -- Each show's next release: its earliest episode that is still unreleased after this.
    UPDATE items s
    SET release_due_at = (SELECT min(e.aired_at) FROM items e
                          WHERE e.show_id = s.id AND e.kind = 'episode'
                            AND e.state = 'unreleased' AND e.aired_at > (SELECT at FROM cutoff))
    FROM shows d
    WHERE s.id = d.id
), queued AS (
    INSERT INTO jobs AS j (kind, item_id, dedupe_key, run_at, priority)
    SELECT 'scrape', r.id, 'scrape:' || r.id, $1::timestamptz, $4::smallint
    FROM released r
    ORDER BY 'scrape:' || r.id
    ON CONFLICT (dedupe_key) WHERE status <> 'failed' DO UPDATE SET
        run_at = CASE WHEN j.status = 'queued' AND j.run_at < 'infinity'
                      THEN LEAST(j.run_at, EXCLUDED.run_at) ELSE j.run_at END,
        rerun_at = CASE WHEN j.status = 'running'
                        THEN LEAST(COALESCE(j.rerun_at, EXCLUDED.run_at), EXCLUDED.run_at)
                        ELSE j.rerun_at END,
        priority = GREATEST(j.priority, EXCLUDED.priority)
)
SELECT id, show_id FROM released;

-- name: next_release_at
-- When the next unreleased movie or episode becomes due (air time plus $1 s), NULL if none.
-- $1 delay_s float8
SELECT LEAST(
    (SELECT min(release_due_at) FROM items WHERE release_due_at IS NOT NULL),
    (SELECT min(aired_at) FROM items WHERE kind = 'movie' AND state = 'unreleased')
) + make_interval(secs => $1::float8);

-- name: enqueue_due_checks_between
-- Turn up to $2 due checks with a priority in [$4, $5] into index jobs; each next check moves to $3.
-- $1 now timestamptz, $2 limit integer, $3 fallback_at timestamptz, $4 min_priority smallint, $5 max_priority smallint
WITH due AS (
    -- Rows locked by another scheduler pass are skipped, never checked twice.
    SELECT id, check_priority FROM items
    WHERE next_check_at <= $1::timestamptz
      AND check_priority BETWEEN $4::smallint AND $5::smallint
    ORDER BY check_priority DESC, next_check_at, id
    LIMIT $2::integer
    FOR UPDATE SKIP LOCKED
), pushed AS (
    UPDATE items i SET next_check_at = $3::timestamptz, check_priority = 0
    FROM due d
    WHERE i.id = d.id
    RETURNING i.id
), queued AS (
    INSERT INTO jobs AS j (kind, item_id, dedupe_key, run_at, priority)
    SELECT 'index', d.id, 'index:' || d.id, $1::timestamptz, d.check_priority
    FROM due d
    ORDER BY 'index:' || d.id
    ON CONFLICT (dedupe_key) WHERE status <> 'failed' DO UPDATE SET
        run_at = CASE WHEN j.status = 'queued' AND j.run_at < 'infinity'
                      THEN LEAST(j.run_at, EXCLUDED.run_at) ELSE j.run_at END,
        rerun_at = CASE WHEN j.status = 'running'
                        THEN LEAST(COALESCE(j.rerun_at, EXCLUDED.run_at), EXCLUDED.run_at)
                        ELSE j.rerun_at END,
        priority = GREATEST(j.priority, EXCLUDED.priority)
    RETURNING j.id
)
SELECT (SELECT count(*) FROM pushed) AS checks, (SELECT count(*) FROM queued) AS jobs;

-- name: next_check_at_from
-- The earliest scheduled check with at least priority $1 (NULL if none).
-- $1 min_priority smallint
SELECT min(next_check_at) FROM items
WHERE next_check_at IS NOT NULL AND check_priority >= $1::smallint;

-- name: release_roots
-- Release the aired movies and episodes of these roots and put back those whose air time moved later; returns the released ones still without a live scrape job.
-- $1 root_ids bigint[], $2 now timestamptz, $3 delay_s float8
WITH cutoff AS (
    SELECT $2::timestamptz - make_interval(secs => $3::float8) AS at
), members AS (
    -- The movies among the roots, and every episode of the shows among them (tree index).
    SELECT i.id, i.show_id, i.state, i.aired_at FROM items i
    WHERE i.id = ANY ($1::bigint[]) AND i.kind = 'movie'
    UNION ALL
    SELECT e.id, e.show_id, e.state, e.aired_at FROM items e
    WHERE e.show_id = ANY ($1::bigint[]) AND e.kind = 'episode'
), moved AS (
    -- Aired: unreleased -> indexed. Moved past the cutoff before any scrape: back.
    UPDATE items i
    SET state = CASE WHEN m.state = 'unreleased' THEN 'indexed'
                     ELSE 'unreleased' END::item_state,
        state_changed_at = now(), updated_at = now()
    FROM members m, cutoff c
    WHERE i.id = m.id AND i.state = m.state  -- re-checked under the row lock, as above
      AND ((m.state = 'unreleased' AND m.aired_at <= c.at)
           OR (m.state = 'indexed' AND m.aired_at > c.at))
    RETURNING i.id, i.state
), after AS (
    SELECT m.id, m.show_id, m.aired_at, COALESCE(v.state, m.state) AS state
    FROM members m LEFT JOIN moved v ON v.id = m.id
), next_release AS (
    -- Each show's next release from its episodes as this statement leaves them (a data
    -- change in one CTE is invisible to the others, so it is computed, not re-read).
    UPDATE items s
    SET release_due_at = n.at
    FROM (SELECT r.id, (SELECT min(a.aired_at) FROM after a
                        WHERE a.show_id = r.id AND a.state = 'unreleased') AS at
          FROM unnest($1::bigint[]) AS r(id)) AS n
    WHERE s.id = n.id AND s.kind = 'show' AND s.release_due_at IS DISTINCT FROM n.at
)
SELECT a.id FROM after a
WHERE a.state = 'indexed'
  AND NOT EXISTS (SELECT 1 FROM jobs j
                  WHERE j.dedupe_key = 'scrape:' || a.id AND j.status <> 'failed')
ORDER BY a.id;

-- name: check_changed
-- Make due at $6 the tracked titles a change feed names (only raise the priority of those due by $7 anyway); returns the ids changed.
-- $1 tmdb_show_ids integer[], $2 tmdb_movie_ids integer[], $3 tvmaze_ids integer[], $4 tvmaze_updated float8[], $5 priority smallint, $6 now timestamptz, $7 soon timestamptz, $8 tmdb_checked_since timestamptz
WITH changed AS (
    -- TMDB names days, not times: a show checked since the feed's last read ($8) may have
    -- seen the change already. If TVMaze follows it, TVMaze's exact times decide (below).
    SELECT i.id FROM items i
    WHERE i.kind = 'show' AND i.tmdb_id = ANY ($1::integer[])
      AND NOT COALESCE(i.tvmaze_id IS NOT NULL AND i.status_checked_at >= $8::timestamptz, false)
    UNION
    SELECT i.id FROM items i
    WHERE i.kind = 'movie' AND i.tmdb_id = ANY ($2::integer[])
    UNION
    -- TVMaze says when each show changed: a show checked since then has seen the change.
    SELECT i.id FROM unnest($3::integer[], $4::float8[]) AS u(tvmaze_id, updated)
    JOIN items i ON i.kind = 'show' AND i.tvmaze_id = u.tvmaze_id
    WHERE i.status_checked_at IS NULL OR i.status_checked_at < to_timestamp(u.updated)
)
UPDATE items i
SET next_check_at = CASE WHEN i.next_check_at IS NULL OR i.next_check_at > $7::timestamptz
                         THEN $6::timestamptz ELSE i.next_check_at END,
    check_priority = GREATEST(i.check_priority, $5::smallint)
FROM changed c
WHERE i.id = c.id
  AND (i.next_check_at IS NULL OR i.next_check_at > $7::timestamptz
       OR i.check_priority < $5::smallint)
  -- An index queued to run now reads the change anyway: a second one would only repeat it.
  AND NOT EXISTS (SELECT 1 FROM jobs j
                  WHERE j.dedupe_key = 'index:' || i.id AND j.status = 'queued'
                    AND j.run_at <= $6::timestamptz)
RETURNING i.id;

-- name: feed_interest
-- Which change feeds can name a tracked title: TMDB ids of shows, of movies; TVMaze ids of shows.
SELECT EXISTS (SELECT 1 FROM items WHERE kind = 'show' AND tmdb_id IS NOT NULL) AS tmdb_shows,
       EXISTS (SELECT 1 FROM items WHERE kind = 'movie' AND tmdb_id IS NOT NULL) AS tmdb_movies,
       EXISTS (SELECT 1 FROM items WHERE kind = 'show' AND tvmaze_id IS NOT NULL) AS tvmaze_shows;

-- name: feed_marks
-- Where each change feed was last read, and the ids that read returned.
SELECT feed, read_at, seen FROM feed_marks ORDER BY feed;

-- name: save_feed_mark
-- Remember one complete read of a change feed.
-- $1 feed text, $2 read_at timestamptz, $3 seen integer[]
INSERT INTO feed_marks (feed, read_at, seen) VALUES ($1::text, $2::timestamptz, $3::integer[])
ON CONFLICT (feed) DO UPDATE SET read_at = EXCLUDED.read_at, seen = EXCLUDED.seen;
