-- Finishing a job becomes a plain DELETE. Its key queued again while it ran (rerun_at) is
-- honoured by this row trigger instead of an INSERT in every completion: the WHEN clause is
-- checked in C and is almost always false, whereas the INSERT fired jobs_notify_inserted on
-- every completion, rows or not (measured: a fifth of the server time per finished job).
CREATE FUNCTION jobs_rerun_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A job deleted with its item (ON DELETE CASCADE) has nothing left to run for.
    IF OLD.item_id IS NULL OR EXISTS (SELECT 1 FROM items WHERE id = OLD.item_id) THEN
        INSERT INTO jobs (kind, item_id, dedupe_key, run_at, priority, max_attempts, payload)
        VALUES (OLD.kind, OLD.item_id, OLD.dedupe_key, OLD.rerun_at, OLD.priority,
                OLD.max_attempts, OLD.payload);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_rerun_on_delete AFTER DELETE ON jobs
    FOR EACH ROW
    WHEN (OLD.status = 'running' AND OLD.rerun_at IS NOT NULL)
    EXECUTE FUNCTION jobs_rerun_on_delete();
