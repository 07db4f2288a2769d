-- Surge on PostgreSQL, migration 005: the merchant and admin consoles.
-- Read tables in the shape of the others (key text in byte order, encoded
-- value).

-- `{email}` → user view: the admin's user listing and search by email.
CREATE TABLE users_by_email (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{shop}|{status}|{inverted created ms}|{order}` → order: a shop's orders
-- in one status (the pending-orders queue), newest first.
CREATE TABLE orders_by_shop_status (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{trainer}|{course}` → course: a trainer's courses.
CREATE TABLE courses_by_trainer (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{owner}|{sale}` → sale: a merchant's flash sales.
CREATE TABLE sales_by_owner (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
