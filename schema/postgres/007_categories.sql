-- Surge on PostgreSQL, migration 007: the category tree (one row, `all`,
-- holding the whole tree in reading order).
CREATE TABLE categories (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
