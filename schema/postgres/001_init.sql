-- Surge on PostgreSQL, migration 001: the journal, snapshots and every read
-- table the product writes.
--
-- Migrations are numbered and append-only: never edit an applied file, add
-- 002_….sql instead (`surge migrate` refuses a schema whose recorded
-- checksum differs from the file's). `surge migrate` runs each file in one
-- transaction together with its record in schema_migrations, inside the
-- schema named by `postgres_schema` (it is the connection's search_path),
-- so a migration is applied whole or not at all.
--
-- Keys are text in the "C" collation: ordered by bytes, as on the other
-- backends, whatever the database's locale. Every query Surge runs is a
-- primary-key lookup or a primary-key range (src/store/postgres/mod.rs);
-- a test checks with EXPLAIN that none is a sequential scan.

-- The journal: a stream's events numbered 1, 2, 3…. The primary key makes
-- a second writer's append of the same sequence number fail (Surge inserts
-- with ON CONFLICT DO NOTHING, sees fewer rows than it sent, and rolls the
-- whole group back), so nothing is ever overwritten.
CREATE TABLE journal (
  stream  text COLLATE "C" NOT NULL,
  seq     bigint NOT NULL CHECK (seq > 0),
  payload bytea NOT NULL,
  PRIMARY KEY (stream, seq)
);

-- Latest snapshot of a stream (MessagePack [schema_version, state]); an
-- older one never replaces a newer one.
CREATE TABLE snapshots (
  stream  text COLLATE "C" PRIMARY KEY,
  seq     bigint NOT NULL,
  payload bytea NOT NULL
);

-- Read tables: key → value, written in the transaction of the events that
-- produced them, scanned by key prefix in key order. The key formats are in
-- src/store/tables.rs.

-- `{customer}|{inverted created ms}|{order}` → order summary, newest first.
CREATE TABLE orders_by_customer (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{shop}|{inverted created ms}|{order}` → order summary.
CREATE TABLE orders_by_shop (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{queue}|{claim}` → claim.
CREATE TABLE claims_by_queue (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{user}|{queue}|{claim}` → claim: a person's enrollments and purchases.
CREATE TABLE claims_by_user (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{role}|{user}` → empty: whom a broadcast reaches.
CREATE TABLE users_by_role (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- Product and course records by id, scanned in id order for listings.
CREATE TABLE products (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE courses (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{provider}|{reference}` → order id: webhooks name the gateway's reference.
CREATE TABLE payment_refs (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- Due work, `{due ms:020}|{id}` → empty, scanned in due order.
CREATE TABLE timers (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE queue_timers (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- The mail outbox, `{due ms:020}|{mail id}` → mail, and mails that could
-- not be sent.
CREATE TABLE outbox (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE outbox_dead (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- A delivery's sampled track, `{order}|{device ts ms:020}` → position, and
-- `{expires ms:020}|{order}` → empty: when each track is deleted.
CREATE TABLE track_points (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
CREATE TABLE track_expiry (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
