-- When aired episodes become work, without an index on every episode's air time.
--
-- release_due_at on a show is the air time of its earliest episode still 'unreleased' (a
-- past one right after an import; otherwise the next announced one). The release pass
-- finds due shows through a small index on it, releases their aired episodes through the
-- tree index, and moves it on. Movies are few: a partial index on their own air time.
-- Before this, the pass read every unreleased episode: 0.3 s once 16% of 290,000 were.

ALTER TABLE items ADD COLUMN release_due_at timestamptz;

CREATE INDEX items_release_due ON items (release_due_at) WHERE release_due_at IS NOT NULL;
CREATE INDEX items_unreleased_movies ON items (aired_at)
    WHERE kind = 'movie' AND state = 'unreleased';

-- Recompute release_due_at of some shows from their episodes (tree index, a few rows each).
-- The state test sits in the aggregate's FILTER, not in WHERE, so the only way in is the
-- show's tree; and seq scans are off inside: a plan cached while items was nearly empty (an
-- import's first calls) must not become a scan of every episode per show later.
CREATE FUNCTION riven_refresh_release_due(p_show_ids bigint[]) RETURNS void
LANGUAGE sql SET enable_seqscan = off AS $fn$
    UPDATE items s
    SET release_due_at = due.at
    FROM (SELECT sid,
                 (SELECT min(e.aired_at) FILTER (WHERE e.state = 'unreleased') FROM items e
                  WHERE e.show_id = sid AND e.kind = 'episode') AS at
          FROM unnest(p_show_ids) AS sid) AS due
    WHERE s.id = due.sid AND s.kind = 'show'
      AND s.release_due_at IS DISTINCT FROM due.at;
$fn$;

UPDATE items s SET release_due_at = due.at
FROM (SELECT show_id, min(aired_at) AS at FROM items
      WHERE kind = 'episode' AND state = 'unreleased' GROUP BY show_id) AS due
WHERE s.id = due.show_id;

-- The tree functions read items by key only. Their plans are cached per session, and an
-- import starts with an empty table: a plan made then must not turn into a scan of every
-- row per call as the table grows. Inside them seq scans are off.
ALTER FUNCTION riven_upsert_movies(timestamptz, bigint[], bigint[], text[], text[], bigint[],
                                   double precision[], date[], double precision[], text[])
    SET enable_seqscan = off;
ALTER FUNCTION riven_adopt_identity(bigint, media_kind, integer, integer, text, integer)
    SET enable_seqscan = off;
ALTER FUNCTION riven_delete_items(bigint[]) SET enable_seqscan = off;

-- The tree upsert, which now also keeps the shows' release_due_at.
CREATE OR REPLACE FUNCTION riven_upsert_show_trees(
    p_now timestamptz,
    p_tmdb bigint[], p_tvdb bigint[], p_imdb text[], p_tvmaze bigint[], p_title text[],
    p_year bigint[], p_status show_status[], p_last_air double precision[],
    p_next_air double precision[], p_next_check double precision[], p_timezone text[],
    p_fingerprint text[],
    p_season_show bigint[], p_season_number bigint[], p_season_title text[],
    p_season_air_date date[], p_season_fingerprint text[],
    p_episode_show bigint[], p_episode_season bigint[], p_episode_number bigint[],
    p_episode_title text[], p_episode_aired_at double precision[], p_episode_air_date date[]
) RETURNS TABLE (
    show_id bigint, tmdb_id integer, created boolean,
    children_inserted bigint, children_updated bigint
) LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    v_show_ids bigint[];
    v_created boolean[];
BEGIN
    -- Shows first, in tmdb order. Each upsert locks its show row until commit, so concurrent
    -- upserts of one show run one after the other, and the statements below (each a new
    -- snapshot) see every child an earlier one committed: plain INSERTs cannot collide.
    -- Only tmdb_id goes in here: ON CONFLICT handles races on its arbiter alone, and a race
    -- on another unique id would raise instead, so those are set by the next statement.
    WITH input AS (
        SELECT * FROM unnest(p_tmdb, p_title, p_year, p_status, p_last_air, p_next_air,
                             p_next_check, p_timezone, p_fingerprint)
            WITH ORDINALITY AS s(tmdb_id, title, year, status, last_air, next_air, next_check,
                                 air_timezone, fingerprint, ord)
    ), upserted AS (
        INSERT INTO items AS it (
            kind, tmdb_id, title, year, status, last_air_at, next_air_at, next_check_at,
            air_timezone, fingerprint, status_checked_at, state)
        SELECT 'show', i.tmdb_id, i.title, i.year, i.status, to_timestamp(i.last_air),
               to_timestamp(i.next_air), to_timestamp(i.next_check), i.air_timezone,
               i.fingerprint, p_now, 'indexed'
        FROM input i
        ORDER BY i.tmdb_id
        ON CONFLICT (kind, tmdb_id) WHERE tmdb_id IS NOT NULL DO UPDATE SET
            title = EXCLUDED.title,
            year = EXCLUDED.year,
            status = EXCLUDED.status,
            last_air_at = EXCLUDED.last_air_at,
            next_air_at = EXCLUDED.next_air_at,
            next_check_at = EXCLUDED.next_check_at,
            air_timezone = EXCLUDED.air_timezone,
            fingerprint = EXCLUDED.fingerprint,
            status_checked_at = EXCLUDED.status_checked_at,
            state = CASE WHEN it.state = 'requested' THEN 'indexed' ELSE it.state END,
            state_changed_at = CASE WHEN it.state = 'requested' THEN now()
                                    ELSE it.state_changed_at END,
            updated_at = now()
        RETURNING it.id, it.tmdb_id, (it.xmax = 0) AS created
    )
    SELECT array_agg(u.id ORDER BY i.ord), array_agg(u.created ORDER BY i.ord)
    INTO v_show_ids, v_created
    FROM input i JOIN upserted u ON u.tmdb_id = i.tmdb_id;

    -- The other ids, on rows this transaction has locked. An id another show holds (a
    -- request not merged yet) is left out rather than failing the batch;
    -- riven_adopt_identity merges such requests when they are indexed.
    UPDATE items AS it
    SET tvdb_id = COALESCE(CASE WHEN NOT EXISTS (
                      SELECT 1 FROM items o WHERE o.kind = 'show' AND o.tvdb_id = n.tvdb_id
                                              AND o.id <> it.id) THEN n.tvdb_id END, it.tvdb_id),
        imdb_id = COALESCE(CASE WHEN NOT EXISTS (
                      SELECT 1 FROM items o WHERE o.imdb_id = n.imdb_id
                                              AND o.id <> it.id) THEN n.imdb_id END, it.imdb_id),
        tvmaze_id = COALESCE(CASE WHEN NOT EXISTS (
                      SELECT 1 FROM items o WHERE o.kind = 'show' AND o.tvmaze_id = n.tvmaze_id
                                              AND o.id <> it.id) THEN n.tvmaze_id END,
                             it.tvmaze_id),
        -- A show this call created has only the children passed in, all unreleased: its
        -- next release is their earliest air time, no need to read them back.
        release_due_at = CASE WHEN n.created THEN first_air.at ELSE it.release_due_at END
    FROM unnest(v_show_ids, p_tvdb, p_imdb, p_tvmaze, v_created)
            WITH ORDINALITY AS n(id, tvdb_id, imdb_id, tvmaze_id, created, ord)
    LEFT JOIN (SELECT e.show_ord, min(to_timestamp(e.aired_at)) AS at
               FROM unnest(p_episode_show, p_episode_aired_at) AS e(show_ord, aired_at)
               GROUP BY e.show_ord) AS first_air ON first_air.show_ord = n.ord
    WHERE it.id = n.id
      AND (n.created
           OR n.tvdb_id IS DISTINCT FROM it.tvdb_id AND n.tvdb_id IS NOT NULL
           OR n.imdb_id IS DISTINCT FROM it.imdb_id AND n.imdb_id IS NOT NULL
           OR n.tvmaze_id IS DISTINCT FROM it.tvmaze_id AND n.tvmaze_id IS NOT NULL);

    IF v_show_ids IS NULL THEN
        RETURN;
    END IF;

    -- Every show is new (a first import): no children can exist yet, because nobody else
    -- can insert children of a show row this transaction created and still holds. Insert
    -- them straight, without reading items. The repository sorts trees by tmdb id, so
    -- the rows arrive in key order.
    IF NOT (false = ANY (v_created)) THEN
        INSERT INTO items (kind, show_id, season_number, episode_number, title, aired_at,
                           air_date, fingerprint, state)
        SELECT 'season'::media_kind, v_show_ids[n.show_ord::integer], n.number::integer,
               NULL::integer, n.title, NULL::timestamptz, n.air_date, n.fingerprint,
               'indexed'::item_state
        FROM unnest(p_season_show, p_season_number, p_season_title, p_season_air_date,
                    p_season_fingerprint) AS n(show_ord, number, title, air_date, fingerprint)
        UNION ALL
        SELECT 'episode'::media_kind, v_show_ids[e.show_ord::integer], e.season::integer,
               e.number::integer, e.title, to_timestamp(e.aired_at), e.air_date, NULL::text,
               'unreleased'::item_state
        FROM unnest(p_episode_show, p_episode_season, p_episode_number, p_episode_title,
                    p_episode_aired_at, p_episode_air_date)
            AS e(show_ord, season, number, title, aired_at, air_date);
        RETURN QUERY
        WITH children AS (
            SELECT c.show_ord, count(*) AS n
            FROM (SELECT unnest(p_season_show) AS show_ord
                  UNION ALL SELECT unnest(p_episode_show)) AS c
            GROUP BY c.show_ord
        )
        SELECT s.show_id, s.tmdb_id::integer, s.created, COALESCE(c.n, 0), 0::bigint
        FROM unnest(v_show_ids, p_tmdb, v_created) WITH ORDINALITY AS s(show_id, tmdb_id,
                                                                         created, ord)
        LEFT JOIN children c ON c.show_ord = s.ord;
        RETURN;
    END IF;

    RETURN QUERY
    WITH season_in AS (
        SELECT v_show_ids[n.show_ord::integer] AS show_id, n.number::integer AS season_number,
               n.title, n.air_date, n.fingerprint
        FROM unnest(p_season_show, p_season_number, p_season_title, p_season_air_date,
                    p_season_fingerprint) AS n(show_ord, number, title, air_date, fingerprint)
    ), episode_in AS (
        SELECT v_show_ids[e.show_ord::integer] AS show_id, e.season::integer AS season_number,
               e.number::integer AS episode_number, e.title, to_timestamp(e.aired_at) AS aired_at,
               e.air_date
        FROM unnest(p_episode_show, p_episode_season, p_episode_number, p_episode_title,
                    p_episode_aired_at, p_episode_air_date)
            AS e(show_ord, season, number, title, aired_at, air_date)
    ), existing AS (
        -- The stored children of these shows only (tree index), so the cost follows the
        -- batch, not the table: a join against all of items would scan it once per call.
        SELECT x.id, x.show_id, x.season_number, x.episode_number, x.title, x.aired_at,
               x.air_date, x.fingerprint
        FROM items x
        WHERE x.show_id = ANY (v_show_ids)
    ), diff AS (
        -- Every incoming child beside its stored row (if any), and whether it differs.
        SELECT 'season'::media_kind AS kind, s.show_id, s.season_number,
               NULL::integer AS episode_number, s.title, NULL::timestamptz AS aired_at,
               s.air_date, s.fingerprint, x.id AS existing_id,
               (x.title, x.air_date, x.fingerprint)
                   IS DISTINCT FROM (s.title, s.air_date, s.fingerprint) AS changed
        FROM season_in s
        LEFT JOIN existing x ON x.show_id = s.show_id AND x.season_number = s.season_number
                            AND x.episode_number IS NULL
        UNION ALL
        SELECT 'episode'::media_kind, e.show_id, e.season_number, e.episode_number, e.title,
               e.aired_at, e.air_date, NULL::text, x.id,
               (x.title, x.aired_at, x.air_date)
                   IS DISTINCT FROM (e.title, e.aired_at, e.air_date)
        FROM episode_in e
        LEFT JOIN existing x ON x.show_id = e.show_id AND x.season_number = e.season_number
                            AND x.episode_number = e.episode_number
    ), updated AS (
        UPDATE items AS it
        SET title = d.title, aired_at = d.aired_at, air_date = d.air_date,
            fingerprint = d.fingerprint, updated_at = now()
        FROM diff d
        WHERE it.id = d.existing_id AND d.changed AND it.show_id = ANY (v_show_ids)
        RETURNING it.show_id
    ), inserted AS (
        INSERT INTO items AS it (kind, show_id, season_number, episode_number, title, aired_at,
                                 air_date, fingerprint, state)
        SELECT d.kind, d.show_id, d.season_number, d.episode_number, d.title, d.aired_at,
               d.air_date, d.fingerprint,
               CASE d.kind WHEN 'season' THEN 'indexed'::item_state
                           ELSE 'unreleased'::item_state END
        FROM diff d
        WHERE d.existing_id IS NULL
        RETURNING it.show_id
    ), inserted_per_show AS (
        SELECT i.show_id, count(*) AS n FROM inserted i GROUP BY i.show_id
    ), updated_per_show AS (
        SELECT u.show_id, count(*) AS n FROM updated u GROUP BY u.show_id
    )
    SELECT s.show_id, s.tmdb_id::integer, s.created, COALESCE(ip.n, 0), COALESCE(up.n, 0)
    FROM unnest(v_show_ids, p_tmdb, v_created) AS s(show_id, tmdb_id, created)
    LEFT JOIN inserted_per_show ip ON ip.show_id = s.show_id
    LEFT JOIN updated_per_show up ON up.show_id = s.show_id;
    -- Shows that existed may have had episodes added, moved or released: read them back.
    PERFORM riven_refresh_release_due(ARRAY(
        SELECT u.id FROM unnest(v_show_ids, v_created) AS u(id, created) WHERE NOT u.created));
END
$fn$;
