-- Functions that write or delete whole item trees. They are functions, not single
-- statements, because each needs a fresh snapshot after taking a lock: in READ COMMITTED
-- every statement inside a volatile function sees what other transactions committed before
-- it started, so "lock the show, then diff its children" is exact, in one round trip.

-- Upsert many show trees (shows, seasons, episodes) in one call. Never deletes: seasons and
-- episodes not passed are left alone, so the indexer may pass only what it fetched.
-- Shows are matched by tmdb id; children by (show, season, episode). Unchanged children are
-- not written at all. New episodes start 'unreleased'; release_due moves them on once aired.
-- Integers come as bigint[] and times as epoch seconds (float8[]): asyncpg encodes those
-- several times faster than integer[] and timestamptz[], which matters at 250,000 rows.
CREATE FUNCTION riven_upsert_show_trees(
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
) LANGUAGE plpgsql AS $fn$
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
                             it.tvmaze_id)
    FROM unnest(v_show_ids, p_tvdb, p_imdb, p_tvmaze) AS n(id, tvdb_id, imdb_id, tvmaze_id)
    WHERE it.id = n.id
      AND (n.tvdb_id IS DISTINCT FROM it.tvdb_id AND n.tvdb_id IS NOT NULL
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
END
$fn$;

-- Upsert movies by tmdb id, the same way: the row first (tmdb id only), then other ids.
-- A bare request becomes 'unreleased'; release_due moves it on once released.
CREATE FUNCTION riven_upsert_movies(
    p_now timestamptz, p_tmdb bigint[], p_tvdb bigint[], p_imdb text[], p_title text[],
    p_year bigint[], p_released double precision[], p_release_date date[],
    p_next_check double precision[], p_fingerprint text[]
) RETURNS TABLE (item_id bigint, tmdb_id integer, created boolean)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_created boolean[];
BEGIN
    WITH input AS (
        SELECT * FROM unnest(p_tmdb, p_title, p_year, p_released, p_release_date, p_next_check,
                             p_fingerprint)
            WITH ORDINALITY AS m(tmdb_id, title, year, released, release_date, next_check,
                                 fingerprint, ord)
    ), upserted AS (
        INSERT INTO items AS it (kind, tmdb_id, title, year, aired_at, air_date, next_check_at,
                                 fingerprint, status_checked_at, state)
        SELECT 'movie', m.tmdb_id, m.title, m.year, to_timestamp(m.released), m.release_date,
               to_timestamp(m.next_check), m.fingerprint, p_now, 'unreleased'
        FROM input m
        ORDER BY m.tmdb_id
        ON CONFLICT (kind, tmdb_id) WHERE tmdb_id IS NOT NULL DO UPDATE SET
            title = EXCLUDED.title,
            year = EXCLUDED.year,
            aired_at = EXCLUDED.aired_at,
            air_date = EXCLUDED.air_date,
            next_check_at = EXCLUDED.next_check_at,
            fingerprint = EXCLUDED.fingerprint,
            status_checked_at = EXCLUDED.status_checked_at,
            state = CASE WHEN it.state = 'requested' THEN 'unreleased' ELSE it.state END,
            state_changed_at = CASE WHEN it.state = 'requested' THEN now()
                                    ELSE it.state_changed_at END,
            updated_at = now()
        RETURNING it.id, it.tmdb_id, (it.xmax = 0) AS created
    )
    SELECT array_agg(u.id ORDER BY m.ord), array_agg(u.created ORDER BY m.ord)
    INTO v_ids, v_created
    FROM input m JOIN upserted u ON u.tmdb_id = m.tmdb_id;

    UPDATE items AS it
    SET tvdb_id = COALESCE(CASE WHEN NOT EXISTS (
                      SELECT 1 FROM items o WHERE o.kind = 'movie' AND o.tvdb_id = n.tvdb_id
                                              AND o.id <> it.id) THEN n.tvdb_id END, it.tvdb_id),
        imdb_id = COALESCE(CASE WHEN NOT EXISTS (
                      SELECT 1 FROM items o WHERE o.imdb_id = n.imdb_id
                                              AND o.id <> it.id) THEN n.imdb_id END, it.imdb_id)
    FROM unnest(v_ids, p_tvdb, p_imdb) AS n(id, tvdb_id, imdb_id)
    WHERE it.id = n.id
      AND (n.tvdb_id IS DISTINCT FROM it.tvdb_id AND n.tvdb_id IS NOT NULL
           OR n.imdb_id IS DISTINCT FROM it.imdb_id AND n.imdb_id IS NOT NULL);

    RETURN QUERY
    SELECT r.item_id, r.tmdb_id::integer, r.created
    FROM unnest(v_ids, p_tmdb, v_created) AS r(item_id, tmdb_id, created);
END
$fn$;

-- Make one row the movie or show that the given ids name, merging bare requests for it.
-- A title requested by tvdb id (Sonarr) and by tmdb id (Overseerr) is two rows until its
-- ids are known; the indexer calls this with the full ids before it upserts the tree.
-- Returns the id to use, or NULL when neither the row nor any id is known any more.
CREATE FUNCTION riven_adopt_identity(
    p_item bigint, p_kind media_kind, p_tmdb integer, p_tvdb integer, p_imdb text,
    p_tvmaze integer
) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v_rows bigint[];
    v_keep bigint;
    v_blocker bigint;
BEGIN
    -- Lock every row that is this title by any id, in id order (a fixed lock order).
    SELECT array_agg(matched.id) INTO v_rows FROM (
        SELECT id FROM items
        WHERE kind = p_kind
          AND (id = p_item OR tmdb_id = p_tmdb OR tvdb_id = p_tvdb OR imdb_id = p_imdb
               OR tvmaze_id = p_tvmaze)
        ORDER BY id
        FOR UPDATE
    ) AS matched;
    IF v_rows IS NULL THEN
        RETURN NULL;
    END IF;
    -- Keep the row that has the tmdb id, else one past the request stage, else the
    -- request being indexed, else the oldest.
    SELECT id INTO v_keep FROM items WHERE id = ANY (v_rows)
    ORDER BY tmdb_id IS NOT DISTINCT FROM p_tmdb DESC, state <> 'requested' DESC,
             id = p_item DESC NULLS LAST, id
    LIMIT 1;
    -- Only bare requests are merged away; two indexed rows for one title need a person.
    SELECT id INTO v_blocker FROM items p
    WHERE p.id = ANY (v_rows) AND p.id <> v_keep
      AND (p.state <> 'requested' OR EXISTS (SELECT 1 FROM items c WHERE c.show_id = p.id))
    LIMIT 1;
    IF v_blocker IS NOT NULL THEN
        RAISE EXCEPTION 'items % and % name the same title by different ids', v_keep, v_blocker
            USING ERRCODE = 'unique_violation';
    END IF;
    IF cardinality(v_rows) > 1 THEN
        DELETE FROM requests r
        WHERE r.item_id = ANY (v_rows) AND r.item_id <> v_keep
          AND EXISTS (SELECT 1 FROM requests k WHERE k.item_id = v_keep AND k.inbox_id = r.inbox_id);
        UPDATE requests SET item_id = v_keep WHERE item_id = ANY (v_rows) AND item_id <> v_keep;
        DELETE FROM items WHERE id = ANY (v_rows) AND id <> v_keep;
    END IF;
    UPDATE items
    SET tmdb_id = COALESCE(p_tmdb, tmdb_id), tvdb_id = COALESCE(p_tvdb, tvdb_id),
        imdb_id = COALESCE(p_imdb, imdb_id), tvmaze_id = COALESCE(p_tvmaze, tvmaze_id),
        updated_at = now()
    WHERE id = v_keep;
    RETURN v_keep;
END
$fn$;

-- Delete items with everything below them (a show's seasons and episodes, a season's
-- episodes); jobs, releases, downloads, links and requests go with them by foreign key.
-- Returns how many items were deleted.
CREATE FUNCTION riven_delete_items(p_ids bigint[]) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    v_count bigint;
BEGIN
    -- Lock the rows first: this waits for a tree upsert in flight, and the DELETE below
    -- (a new snapshot) then sees every child that upsert committed.
    PERFORM 1 FROM items WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    WITH roots AS (
        SELECT id, kind, show_id, season_number FROM items WHERE id = ANY (p_ids)
    ), gone AS (
        DELETE FROM items i
        WHERE i.id IN (SELECT id FROM roots)
           OR i.show_id IN (SELECT id FROM roots WHERE kind = 'show')
           OR (i.kind = 'episode' AND (i.show_id, i.season_number) IN
                   (SELECT show_id, season_number FROM roots WHERE kind = 'season'))
        RETURNING 1
    )
    SELECT count(*) INTO v_count FROM gone;
    RETURN v_count;
END
$fn$;
