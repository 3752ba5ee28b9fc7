-- New-episode detection: where each change feed was last read, and a wake-up for the
-- release loop when a show's next release comes sooner than it planned to wake.

-- One row per change feed (tmdb_tv, tmdb_movie, tvmaze). read_at is the daemon's clock at
-- the last complete read; seen holds the ids that read returned (TMDB's feeds name whole
-- days without times, so only ids not seen before are news). Kept here, not in memory, so
-- a restart neither re-checks a day's changes again nor misses the ones made meanwhile.
CREATE TABLE feed_marks (
    feed    text PRIMARY KEY,
    read_at timestamptz NOT NULL,
    seen    integer[] NOT NULL DEFAULT '{}'
);

-- The release loop sleeps until the earliest release_due_at. An index that adds an episode
-- airing sooner (announced late) moves a show's release_due_at earlier: wake the loop.
-- Payload 'release' lets it wait on these alone (the scheduler wakes on every payload).
CREATE FUNCTION items_notify_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riven_schedule', 'release');
    RETURN NULL;
END $$;

CREATE TRIGGER items_notify_release AFTER UPDATE OF release_due_at ON items
    FOR EACH ROW
    WHEN (NEW.release_due_at < OLD.release_due_at
          OR (OLD.release_due_at IS NULL AND NEW.release_due_at IS NOT NULL))
    EXECUTE FUNCTION items_notify_release();
