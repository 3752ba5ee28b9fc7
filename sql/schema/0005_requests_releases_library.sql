-- Who asked for what, what scrapers found, what the debrid services hold, what is linked.

-- One row per request of an item (several sources may ask for the same title).
-- requested_seasons NULL means the whole show. A delivery processed twice (after a crash)
-- adds its request once: (inbox_id, item_id) is unique.
CREATE TABLE requests (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id           bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    inbox_id          bigint REFERENCES inbox (id) ON DELETE SET NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    requested_seasons integer[],
    source            text NOT NULL,
    requester         text
);

CREATE INDEX requests_item ON requests (item_id);
CREATE UNIQUE INDEX requests_delivery ON requests (inbox_id, item_id) WHERE inbox_id IS NOT NULL;

-- Releases a scraper found for an item, ranked. One row per (item, infohash); a release
-- found again refreshes its rank, seeders and seen_at.
CREATE TABLE releases (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id     bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    found_at    timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    size_bytes  bigint CHECK (size_bytes >= 0),
    rank        integer NOT NULL,
    seeders     integer CHECK (seeders >= 0),
    infohash    text NOT NULL CHECK (infohash ~ '^[0-9a-f]{40}$'),
    scraper     text NOT NULL,
    raw_title   text NOT NULL,
    parsed      jsonb NOT NULL DEFAULT '{}',
    cached_on   text[] NOT NULL DEFAULT '{}',   -- services a scraper said hold it cached ([RD+])
    CONSTRAINT releases_item_infohash UNIQUE (item_id, infohash)
);

-- The best releases of an item, in rank order.
CREATE INDEX releases_best ON releases (item_id, rank DESC, id);
CREATE INDEX releases_infohash ON releases (infohash);

-- Releases that must not be used for an item again (not cached, wrong files, 451).
CREATE TABLE release_blacklist (
    item_id    bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    infohash   text NOT NULL CHECK (infohash ~ '^[0-9a-f]{40}$'),
    reason     text NOT NULL,
    PRIMARY KEY (item_id, infohash)
);

-- A torrent in a debrid account. One live row per (service, infohash): a worker reserves
-- it ('adding') before calling the service, so no two workers add the same torrent, and a
-- season pack added for one episode is found and reused by the others.
CREATE TYPE download_status AS ENUM ('adding', 'downloading', 'ready', 'failed', 'removed');

CREATE TABLE downloads (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id        bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    ready_at       timestamptz,
    status         download_status NOT NULL DEFAULT 'adding',
    service        text NOT NULL,
    infohash       text NOT NULL CHECK (infohash ~ '^[0-9a-f]{40}$'),
    torrent_id     text,
    selected_files jsonb NOT NULL DEFAULT '[]',
    error          text
);

CREATE UNIQUE INDEX downloads_live ON downloads (service, infohash)
    WHERE status IN ('adding', 'downloading', 'ready');
CREATE INDEX downloads_item ON downloads (item_id);
CREATE INDEX downloads_waiting ON downloads (service, updated_at)
    WHERE status IN ('adding', 'downloading');

-- The symlink of an item in the library. One link per item, and no two items share a path.
CREATE TABLE library_entries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id     bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    download_id bigint REFERENCES downloads (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    verified_at timestamptz,
    link_path   text NOT NULL,
    target_path text NOT NULL,
    CONSTRAINT library_entries_item UNIQUE (item_id),
    CONSTRAINT library_entries_link_path UNIQUE (link_path)
);

CREATE INDEX library_entries_download ON library_entries (download_id);
