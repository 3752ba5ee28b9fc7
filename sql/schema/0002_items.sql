-- Media items: one table for movies, shows, seasons and episodes, each row with its own state.
--
-- Seasons and episodes point at their show through show_id (no parent_id: an episode's
-- season is the row with the same show_id and season_number). There is deliberately no
-- foreign key on show_id: its per-row check costs more than the insert itself (7.5 us a
-- row, measured), so the tree functions below keep the invariant instead: children are only
-- written while their show's row is locked, and deleted with it by riven_delete_items.

CREATE TYPE media_kind AS ENUM ('movie', 'show', 'season', 'episode');

-- Declaration order matters: min(state) over episodes is the least advanced pipeline state.
CREATE TYPE item_state AS ENUM (
    'requested', 'indexed', 'scraped', 'downloaded', 'linked', 'completed',
    'partially_completed', 'ongoing', 'unreleased', 'failed', 'paused'
);

CREATE TYPE show_status AS ENUM ('ongoing', 'ended', 'hiatus', 'unknown');

-- Columns are ordered widest first so rows pack without alignment padding.
CREATE TABLE items (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    show_id           bigint,
    state_changed_at  timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    aired_at          timestamptz,   -- exact air time (episodes) or release time (movies)
    last_air_at       timestamptz,   -- shows: the last episode that aired
    next_air_at       timestamptz,   -- shows: the next announced episode
    status_checked_at timestamptz,   -- shows and movies: last successful index
    next_check_at     timestamptz,   -- shows and movies: when to index again
    scraped_at        timestamptz,   -- movies and episodes: last scrape
    season_number     integer,
    episode_number    integer,
    tmdb_id           integer,
    tvdb_id           integer,
    tvmaze_id         integer,
    scrape_count      integer NOT NULL DEFAULT 0,
    kind              media_kind NOT NULL,
    state             item_state NOT NULL DEFAULT 'requested',
    resume_state      item_state,    -- where retry (from failed) or resume (from paused) goes
    status            show_status,
    air_date          date,
    year              smallint,
    check_priority    smallint NOT NULL DEFAULT 0,
    title             text NOT NULL DEFAULT '',
    imdb_id           text,
    air_timezone      text,
    fingerprint       text,          -- the indexer's digest of the source data, to skip refetches
    last_error        text,
    CONSTRAINT items_children_have_a_show
        CHECK ((kind IN ('season', 'episode')) = (show_id IS NOT NULL)),
    CONSTRAINT items_numbers_match_kind CHECK (CASE kind
        WHEN 'season' THEN season_number IS NOT NULL AND episode_number IS NULL
        WHEN 'episode' THEN season_number IS NOT NULL AND episode_number IS NOT NULL
        ELSE season_number IS NULL AND episode_number IS NULL END),
    CONSTRAINT items_external_ids_on_roots_only
        CHECK (kind IN ('movie', 'show') OR num_nonnulls(tmdb_id, tvdb_id, imdb_id, tvmaze_id) = 0),
    CONSTRAINT items_status_on_shows_only CHECK (kind = 'show' OR status IS NULL),
    CONSTRAINT items_imdb_id_format CHECK (imdb_id ~ '^tt[0-9]{5,12}$'),
    CONSTRAINT items_external_ids_positive
        CHECK (tmdb_id > 0 AND tvdb_id > 0 AND tvmaze_id > 0)
);

-- The same title can never exist twice: one movie or show per external id. The predicates
-- (x IS NOT NULL) are implied by any "x = $n" comparison, so lookups with parameters use
-- these small indexes (they hold only movies and shows).
CREATE UNIQUE INDEX items_tmdb_key ON items (kind, tmdb_id) WHERE tmdb_id IS NOT NULL;
CREATE UNIQUE INDEX items_tvdb_key ON items (kind, tvdb_id) WHERE tvdb_id IS NOT NULL;
CREATE UNIQUE INDEX items_imdb_key ON items (imdb_id) WHERE imdb_id IS NOT NULL;
CREATE UNIQUE INDEX items_tvmaze_key ON items (kind, tvmaze_id) WHERE tvmaze_id IS NOT NULL;

-- One season (episode_number NULL) or episode per position in a show; also the index that
-- reads a show's tree and deletes it.
CREATE UNIQUE INDEX items_tree_key ON items (show_id, season_number, episode_number)
    NULLS NOT DISTINCT WHERE show_id IS NOT NULL;

-- Keyset pages by state (oldest change first) and the oldest item per state, for metrics.
CREATE INDEX items_state_page ON items (state, state_changed_at, id);
-- Keyset pages by kind, for the rarer kinds: episodes are most rows, so their pages read the
-- primary key instead, and leaving them out of this index keeps imports fast.
CREATE INDEX items_kind_page ON items (kind, id) WHERE kind <> 'episode';
-- Title search over movies and shows. Episode titles are left out on purpose: indexing
-- 250,000 of them halves the import rate, and people search for shows, not episodes.
CREATE INDEX items_title_trgm ON items USING gin (title gin_trgm_ops)
    WHERE kind IN ('movie', 'show');
-- Shows and movies due for indexing.
CREATE INDEX items_next_check ON items (next_check_at) WHERE next_check_at IS NOT NULL;
-- No index on aired_at: every new episode starts 'unreleased', so one would take every
-- imported row in random order (measured: a third of the import's cost). The release
-- queries read the unreleased rows through items_state_page instead; outside an import
-- those are the announced future episodes, a few thousand.

-- Counts by kind and state for the metrics, without scanning items: every statement that
-- changes items appends its net change here (statement-level triggers, one row per pair);
-- stats.state_counts sums the rows and folds them into one row per pair as it reads.
-- Appending instead of updating one counter row keeps concurrent writers from queueing
-- on the same row until they commit.
CREATE TABLE item_state_counts (
    kind  media_kind NOT NULL,
    state item_state NOT NULL,
    delta bigint NOT NULL
);

-- "New episodes found in the last day" without an index on created_at (one per row costs
-- more at import than this row per statement): each insert statement notes how many items
-- of each kind it created, and when.
CREATE TABLE item_arrivals (
    arrived_at timestamptz NOT NULL DEFAULT now(),
    kind       media_kind NOT NULL,
    items      bigint NOT NULL
);

CREATE INDEX item_arrivals_at ON item_arrivals (arrived_at);

CREATE FUNCTION items_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_state_counts (kind, state, delta)
    SELECT kind, state, count(*) FROM inserted_items GROUP BY kind, state;
    INSERT INTO item_arrivals (kind, items)
    SELECT kind, count(*) FROM inserted_items GROUP BY kind;
    RETURN NULL;
END $$;

CREATE FUNCTION items_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_state_counts (kind, state, delta)
    SELECT kind, state, sum(delta) FROM (
        SELECT kind, state, 1 AS delta FROM new_items
        UNION ALL
        SELECT kind, state, -1 FROM old_items
    ) AS change
    GROUP BY kind, state
    HAVING sum(delta) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION items_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO item_state_counts (kind, state, delta)
    SELECT kind, state, -count(*) FROM deleted_items GROUP BY kind, state;
    RETURN NULL;
END $$;

CREATE TRIGGER items_count_inserted AFTER INSERT ON items
    REFERENCING NEW TABLE AS inserted_items
    FOR EACH STATEMENT EXECUTE FUNCTION items_count_inserted();
CREATE TRIGGER items_count_updated AFTER UPDATE ON items
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION items_count_updated();
CREATE TRIGGER items_count_deleted AFTER DELETE ON items
    REFERENCING OLD TABLE AS deleted_items
    FOR EACH STATEMENT EXECUTE FUNCTION items_count_deleted();

-- A show or movie made due sooner (a webhook, a change feed) wakes the scheduler at once.
CREATE FUNCTION items_notify_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riven_schedule', '');
    RETURN NULL;
END $$;

CREATE TRIGGER items_notify_schedule AFTER UPDATE OF next_check_at ON items
    FOR EACH ROW
    WHEN (NEW.next_check_at < OLD.next_check_at
          OR (OLD.next_check_at IS NULL AND NEW.next_check_at IS NOT NULL))
    EXECUTE FUNCTION items_notify_schedule();
