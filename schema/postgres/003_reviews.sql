-- Surge on PostgreSQL, migration 003: reviews, ratings and search. Read
-- tables in the shape of the others (key text in byte order, encoded value).

-- `{kind}:{subject}|{inverted created ms}|{review}` → review: a product's,
-- shop's or shipper's approved reviews, newest first.
CREATE TABLE reviews_by_subject (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{created ms}|{review}` → review: reviews waiting for moderation.
CREATE TABLE reviews_pending (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{kind}:{subject}` → rating summary.
CREATE TABLE ratings (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- Shop records by id, scanned in id order for listings.
CREATE TABLE shops (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{owner}|{shop}` → shop: a merchant's shops.
CREATE TABLE shops_by_owner (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{changed ms}|{kind}:{id}` → empty: catalog changes, tailed by each
-- node's search indexer.
CREATE TABLE catalog_feed (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
