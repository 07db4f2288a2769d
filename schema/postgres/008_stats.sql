-- Surge on PostgreSQL, migration 008: platform statistics.

-- `{ms}|{fact key}` → fact: what happened, for the statistics worker.
CREATE TABLE stats_feed (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `h|{YYYYMMDDHH}` → one hour's counters; `cursor` → the worker's place.
CREATE TABLE stats (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
