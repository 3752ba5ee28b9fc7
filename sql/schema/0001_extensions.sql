-- Trigram indexes for title search.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
