-- Writing items: requests, state changes, pause/resume, parent states, deletes.

-- name: request_many
-- Find or create (as requested) the movie or show each request names, and record the requests.
-- $1 kinds media_kind[], $2 tmdb integer[], $3 tvdb integer[], $4 imdb text[], $5 tvmaze integer[], $6 titles text[], $7 years integer[], $8 sources text[], $9 requesters text[], $10 seasons text[], $11 inbox_ids bigint[]
WITH input AS (
    SELECT * FROM unnest($1::media_kind[], $2::integer[], $3::integer[], $4::text[],
                         $5::integer[], $6::text[], $7::integer[], $8::text[], $9::text[],
                         $10::text[], $11::bigint[])
        WITH ORDINALITY AS r(kind, tmdb_id, tvdb_id, imdb_id, tvmaze_id, title, year, source,
                             requester, seasons, inbox_id, ord)
), found AS (
    -- The row any of the request's ids already names (the oldest, if several do).
    SELECT r.ord,
        (SELECT i.id FROM items i
         WHERE i.kind = r.kind
           AND (i.tmdb_id = r.tmdb_id OR i.tvdb_id = r.tvdb_id OR i.imdb_id = r.imdb_id
                OR i.tvmaze_id = r.tvmaze_id)
         ORDER BY i.id LIMIT 1) AS id
    FROM input r
), created AS (
    -- A concurrent request that wins the insert leaves this row out (DO NOTHING): the
    -- repository asks again for those, in a new statement that sees the winner's row.
    INSERT INTO items (kind, tmdb_id, tvdb_id, imdb_id, tvmaze_id, title, year, state)
    SELECT r.kind, r.tmdb_id, r.tvdb_id, r.imdb_id, r.tvmaze_id, COALESCE(r.title, ''),
           r.year, 'requested'
    FROM input r JOIN found f ON f.ord = r.ord
    WHERE f.id IS NULL
    ORDER BY r.ord
    ON CONFLICT DO NOTHING
    RETURNING id, kind, tmdb_id, tvdb_id, imdb_id, tvmaze_id
), resolved AS (
    SELECT r.ord,
        COALESCE(f.id, (SELECT c.id FROM created c
                        WHERE c.kind = r.kind
                          AND (c.tmdb_id = r.tmdb_id OR c.tvdb_id = r.tvdb_id
                               OR c.imdb_id = r.imdb_id OR c.tvmaze_id = r.tvmaze_id)
                        ORDER BY c.id LIMIT 1)) AS item_id,
        f.id IS NULL AS was_new
    FROM input r JOIN found f ON f.ord = r.ord
), recorded AS (
    INSERT INTO requests (item_id, inbox_id, requested_seasons, source, requester)
    SELECT s.item_id, r.inbox_id, r.seasons::integer[], r.source, r.requester
    FROM resolved s JOIN input r ON r.ord = s.ord
    WHERE s.item_id IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT s.ord, s.item_id, s.was_new AND s.item_id IS NOT NULL AS created
FROM resolved s
ORDER BY s.ord;

-- name: requests_for
-- The requests of some items, oldest first (requested seasons decide what a show gets).
-- $1 item_ids bigint[]
SELECT id, item_id, inbox_id, received_at, requested_seasons, source, requester
FROM requests
WHERE item_id = ANY ($1::bigint[])
ORDER BY item_id, id;

-- name: set_state_many
-- Move items to $2 if their state is one of $3 (the transition's allowed sources); returns the ids moved.
-- $1 ids bigint[], $2 state item_state, $3 from_states item_state[]
WITH moved AS (
    UPDATE items
    SET state = $2::item_state, state_changed_at = now(), updated_at = now(),
        resume_state = NULL, last_error = NULL
    WHERE id = ANY ($1::bigint[]) AND state = ANY ($3::item_state[]) AND state <> $2::item_state
    RETURNING id, show_id, state
), nudged AS (
    -- An episode back to 'unreleased' makes its show's next release pass look again.
    UPDATE items s SET release_due_at = '-infinity'
    WHERE s.id IN (SELECT show_id FROM moved WHERE state = 'unreleased')
      AND s.id NOT IN (SELECT id FROM moved)
)
SELECT id FROM moved;

-- name: fail_many
-- Mark items failed with a reason, remembering the state a retry goes back to.
-- $1 ids bigint[], $2 error text
UPDATE items
SET resume_state = state, state = 'failed', state_changed_at = now(), updated_at = now(),
    last_error = $2::text
WHERE id = ANY ($1::bigint[]) AND state NOT IN ('failed', 'paused')
RETURNING id;

-- name: retry_many
-- Send failed items back to the state they failed in (requested/indexed if unknown); returns where each went.
-- $1 ids bigint[]
WITH retried AS (
    UPDATE items
    SET state = COALESCE(resume_state,
                         CASE WHEN kind IN ('movie', 'show') AND status_checked_at IS NULL
                              THEN 'requested' ELSE 'indexed' END::item_state),
        resume_state = NULL, last_error = NULL, state_changed_at = now(), updated_at = now(),
        release_due_at = CASE WHEN kind = 'show' THEN '-infinity' ELSE release_due_at END
    WHERE id = ANY ($1::bigint[]) AND state = 'failed'
    RETURNING id, show_id, state
), nudged AS (
    -- Retried unreleased episodes make their show's next release pass look again (a
    -- retried show is nudged above: one statement must not update a row twice).
    UPDATE items s SET release_due_at = '-infinity'
    WHERE s.id IN (SELECT show_id FROM retried WHERE state = 'unreleased')
      AND s.id NOT IN (SELECT id FROM retried)
)
SELECT id, state FROM retried;

-- name: pause_many
-- Pause items and everything below them; their queued jobs are put off until resumed.
-- $1 ids bigint[]
WITH roots AS (
    SELECT id, kind, show_id, season_number FROM items WHERE id = ANY ($1::bigint[])
), targets AS (
    SELECT id FROM roots
    UNION
    SELECT c.id FROM items c JOIN roots r ON r.kind = 'show' AND c.show_id = r.id
    UNION
    SELECT c.id FROM items c
    JOIN roots r ON r.kind = 'season' AND c.show_id = r.show_id
                AND c.season_number = r.season_number AND c.kind = 'episode'
), paused AS (
    UPDATE items
    SET resume_state = state, state = 'paused', state_changed_at = now(), updated_at = now()
    WHERE id IN (SELECT id FROM targets) AND state NOT IN ('paused', 'failed')
    RETURNING id
), held AS (
    UPDATE jobs SET run_at = 'infinity'
    WHERE item_id IN (SELECT id FROM paused) AND status = 'queued'
)
SELECT id FROM paused;

-- name: resume_many
-- Resume paused items and everything below them; their held jobs become due at $2.
-- $1 ids bigint[], $2 now timestamptz
WITH roots AS (
    SELECT id, kind, show_id, season_number FROM items WHERE id = ANY ($1::bigint[])
), targets AS (
    SELECT id FROM roots
    UNION
    SELECT c.id FROM items c JOIN roots r ON r.kind = 'show' AND c.show_id = r.id
    UNION
    SELECT c.id FROM items c
    JOIN roots r ON r.kind = 'season' AND c.show_id = r.show_id
                AND c.season_number = r.season_number AND c.kind = 'episode'
), resumed AS (
    UPDATE items
    SET state = COALESCE(resume_state, 'indexed'), resume_state = NULL,
        state_changed_at = now(), updated_at = now(),
        release_due_at = CASE WHEN kind = 'show' THEN '-infinity' ELSE release_due_at END
    WHERE id IN (SELECT id FROM targets) AND state = 'paused'
    RETURNING id, show_id, state
), nudged AS (
    -- Resumed unreleased episodes make their show's next release pass look again.
    UPDATE items s SET release_due_at = '-infinity'
    WHERE s.id IN (SELECT show_id FROM resumed WHERE state = 'unreleased')
      AND s.id NOT IN (SELECT id FROM resumed)
), woken AS (
    UPDATE jobs SET run_at = $2::timestamptz
    WHERE item_id IN (SELECT id FROM resumed) AND status = 'queued' AND run_at = 'infinity'
)
SELECT id FROM resumed;

-- name: refresh_parent_states
-- Recompute the states of shows and their seasons from their episodes; returns the rows that changed.
-- $1 show_ids bigint[]
WITH episode_stats AS (
    -- One row per season and one per show (GROUPING SETS), counting episode states.
    SELECT e.show_id, e.season_number, GROUPING(e.season_number) = 1 AS whole_show,
           count(*) FILTER (WHERE e.state <> 'unreleased') AS aired,
           count(*) FILTER (WHERE e.state = 'completed') AS completed,
           count(*) FILTER (WHERE e.state = 'failed') AS failed,
           min(e.state) FILTER (WHERE e.state NOT IN ('unreleased', 'failed', 'paused'))
               AS least_working,
           bool_or(e.state = 'unreleased') AS has_unreleased
    FROM items e
    WHERE e.kind = 'episode' AND e.show_id = ANY ($1::bigint[])
    GROUP BY GROUPING SETS ((e.show_id, e.season_number), (e.show_id))
), parents AS (
    SELECT p.id, p.state, s.aired, s.completed, s.failed, s.least_working,
           s.has_unreleased OR (s.whole_show AND p.status IN ('ongoing', 'hiatus'))
               AS more_coming
    FROM episode_stats s
    JOIN items p ON (s.whole_show AND p.id = s.show_id)
                 OR (NOT s.whole_show AND p.kind = 'season' AND p.show_id = s.show_id
                     AND p.season_number = s.season_number)
), next_states AS (
    -- Mirrors domain.states.aggregate_state.
    SELECT p.id, CASE
        WHEN p.state = 'paused' THEN p.state
        WHEN p.aired = 0 THEN 'unreleased'
        WHEN p.completed = p.aired THEN
            CASE WHEN p.more_coming THEN 'ongoing' ELSE 'completed' END::item_state
        WHEN p.completed > 0 THEN 'partially_completed'
        WHEN p.least_working IS NULL THEN
            CASE WHEN p.failed > 0 THEN 'failed' ELSE 'paused' END::item_state
        ELSE p.least_working
    END AS state
    FROM parents p
)
UPDATE items i
SET state = n.state, state_changed_at = now(), updated_at = now()
FROM next_states n
WHERE i.id = n.id AND i.state <> n.state
RETURNING i.id, i.state;

-- name: record_scrapes
-- Note that items were scraped at $2 (drives the re-scrape backoff).
-- $1 ids bigint[], $2 at timestamptz
UPDATE items SET scraped_at = $2::timestamptz, scrape_count = scrape_count + 1
WHERE id = ANY ($1::bigint[]);

-- name: delete_many
-- Delete items with everything below them and everything that refers to them; returns the count.
-- $1 ids bigint[]
SELECT riven_delete_items($1::bigint[]);

-- name: season_links_pending
-- Episodes of show $1's season $2 downloaded but not linked yet (their scan waits for them).
-- $1 show_id bigint, $2 season_number integer
SELECT count(*) FROM items
WHERE show_id = $1::bigint AND season_number = $2::integer AND kind = 'episode'
  AND state = 'downloaded';

-- name: linked_for_scan
-- What one folder scan completes: items $1 and the episodes of show $2's season $3 that are linked.
-- $1 item_ids bigint[], $2 show_id bigint, $3 season_number integer
SELECT id, show_id FROM items
WHERE state = 'linked'
  AND (id = ANY ($1::bigint[])
       OR (show_id = $2::bigint AND season_number = $3::integer AND kind = 'episode'))
ORDER BY id;
