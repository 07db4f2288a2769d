-- Surge on PostgreSQL, migration 009: flash sales by their end.

-- `{closes ms:020}|{sale}` → sale: the storefront's live and upcoming sales.
CREATE TABLE sales_by_end (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
