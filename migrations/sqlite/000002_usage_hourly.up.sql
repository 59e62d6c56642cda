-- SQLite: times are TEXT in UTC with fixed microsecond precision
-- (2006-01-02T15:04:05.000000Z), so they sort and compare as strings.
-- Per-project usage aggregated per hour: hour is the UTC start of the hour.
-- Rows are incremented by AddUsage (the usage batcher), never rewritten.
CREATE TABLE usage_hourly (
    project_id        TEXT        NOT NULL,
    hour              TEXT        NOT NULL,
    requests          INTEGER     NOT NULL DEFAULT 0,
    cache_hits        INTEGER     NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER     NOT NULL DEFAULT 0,
    completion_tokens INTEGER     NOT NULL DEFAULT 0,
    CONSTRAINT usage_hourly_pkey PRIMARY KEY (project_id, hour)
);
-- Time-range queries ("every project since …").
CREATE INDEX usage_hourly_hour_idx ON usage_hourly (hour, project_id);
