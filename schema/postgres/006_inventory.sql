-- Surge on PostgreSQL, migration 006: inventory. Read tables in the shape
-- of the others (key text in byte order, encoded value).

-- `{product}|{inverted seq}` → movement: a product's stock history,
-- newest first.
CREATE TABLE stock_movements (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{shop}|{product}` → inventory line: a shop's stock levels.
CREATE TABLE inventory (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{shop}|{product}` → inventory line: products at or below their
-- low-stock threshold.
CREATE TABLE low_stock (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{product}|{crossing}` → alert: low-stock crossings not yet told to the
-- merchant.
CREATE TABLE stock_alerts (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
