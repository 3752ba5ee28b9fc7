-- What a debrid service last said against a release it was asked to add (not cached,
-- refused, failed, no file for the item), at the daemon's clock. Read only to skip asking
-- the same service about the same hash again within [debrid] not_cached_retry_s: a job
-- replayed after a crash, or the next item of the same pack, must not add the torrent a
-- second time. It never stands for availability: past the interval the service is asked.
-- item_id is set when the answer holds for one item only (no file for it in the torrent).
CREATE TABLE debrid_checks (
    service    text NOT NULL,
    infohash   text NOT NULL CHECK (infohash ~ '^[0-9a-f]{40}$'),
    item_id    bigint REFERENCES items (id) ON DELETE CASCADE,
    outcome    text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    checked_at timestamptz NOT NULL
);

CREATE UNIQUE INDEX debrid_checks_key ON debrid_checks (infohash, service, item_id)
    NULLS NOT DISTINCT;
