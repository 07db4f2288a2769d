-- Surge on PostgreSQL, migration 003: reviews and ratings. Read tables in
-- the shape of the others (key text in byte order, encoded value).

-- `{kind}:{subject}|{inverted created ms}|{review}` → review: a product's,
-- shop's or shipper's approved reviews, newest first.
CREATE TABLE reviews_by_subject (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{created ms}|{review}` → review: reviews waiting for moderation.
CREATE TABLE reviews_pending (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{kind}:{subject}` → rating summary.
CREATE TABLE ratings (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
