-- The durable work queues: jobs per pipeline stage, the webhook inbox, and the processes
-- that claim from them. Nothing the daemon must do lives only in memory.

-- Every daemon process registers with a fresh boot id and heartbeats; a claim carries the
-- boot id, so claims of a process that died (no heartbeat within the lease, or marked
-- stopped) can be taken back by the next one, at start-up or by a periodic sweep.
CREATE TABLE processes (
    boot_id      uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,
    pid          integer NOT NULL,
    hostname     text NOT NULL
);

CREATE TYPE job_kind AS ENUM ('index', 'scrape', 'download', 'link', 'scan');
CREATE TYPE job_status AS ENUM ('queued', 'running', 'failed');

-- A finished job is deleted (its effect lives in the item); one that used up its attempts
-- stays as 'failed' for inspection until pruned. dedupe_key makes a job unique while it is
-- queued or running: queuing the key again makes the queued job sooner, or (while it
-- runs) sets rerun_at so it runs once more after it finishes.
CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id      bigint REFERENCES items (id) ON DELETE CASCADE,
    run_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    rerun_at     timestamptz,
    finished_at  timestamptz,
    claimed_by   uuid,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    kind         job_kind NOT NULL,
    status       job_status NOT NULL DEFAULT 'queued',
    priority     smallint NOT NULL DEFAULT 0,
    dedupe_key   text NOT NULL,
    last_error   text,
    payload      jsonb,
    CONSTRAINT jobs_claimed_iff_running
        CHECK ((status = 'running') = (claimed_by IS NOT NULL AND claimed_at IS NOT NULL))
);

-- The claim path: per kind, highest priority first, then oldest due.
CREATE INDEX jobs_claim ON jobs (kind, priority DESC, run_at, id) WHERE status = 'queued';
CREATE UNIQUE INDEX jobs_dedupe_key ON jobs (dedupe_key) WHERE status <> 'failed';
CREATE INDEX jobs_item ON jobs (item_id);
CREATE INDEX jobs_running ON jobs (claimed_by) WHERE status = 'running';
CREATE INDEX jobs_failed ON jobs (finished_at) WHERE status = 'failed';

-- New work wakes the workers of its kind at once (payload: the kind). Identical
-- notifications within a transaction are merged by PostgreSQL, so a 100,000-row insert
-- sends one per kind.
CREATE FUNCTION jobs_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riven_jobs', kind::text)
    FROM (SELECT DISTINCT kind FROM inserted_jobs WHERE status = 'queued') AS kinds;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_inserted();

-- A queued job made sooner (queued again by a webhook, resumed) wakes its workers too.
-- Retries and snoozes move run_at later and stay quiet: the workers' next-due timer
-- finds them.
CREATE FUNCTION jobs_notify_sooner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riven_jobs', NEW.kind::text);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_sooner AFTER UPDATE OF run_at ON jobs
    FOR EACH ROW
    WHEN (NEW.status = 'queued' AND NEW.run_at < OLD.run_at)
    EXECUTE FUNCTION jobs_notify_sooner();

-- Received webhooks, persisted before the sender gets its 2xx. (source, delivery_key) is
-- unique: a retried delivery has one effect. A key seen again after the retry window (a
-- sender repeating an identical body on purpose) re-arms the processed row instead.
-- The inbox is its own small queue, claimed like jobs (claimed_by is a boot id).
CREATE TABLE inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    processed_at timestamptz,
    claimed_by   uuid,
    attempts     integer NOT NULL DEFAULT 0,
    source       text NOT NULL,
    event        text NOT NULL,
    delivery_key text NOT NULL,
    payload      jsonb NOT NULL,
    intents      jsonb NOT NULL DEFAULT '[]',
    error        text,
    CONSTRAINT inbox_delivery_key UNIQUE (source, delivery_key)
);

CREATE INDEX inbox_pending ON inbox (available_at, id)
    WHERE processed_at IS NULL AND claimed_by IS NULL;
CREATE INDEX inbox_claimed ON inbox (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;

CREATE FUNCTION inbox_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riven_inbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER inbox_notify_inserted AFTER INSERT ON inbox
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_notify_inserted();
