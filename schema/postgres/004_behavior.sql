-- Surge on PostgreSQL, migration 004: behaviour signals (trending,
-- recently viewed, bought together). Read tables in the shape of the others.

-- `{user}|{node}` → the user's last views as that node recorded them.
CREATE TABLE recently_viewed (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{product}|{node}` → partners bought together with the product, as that
-- node counted them.
CREATE TABLE also_bought (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
-- `{window end ms}|{node}` → one node's product activity in one window,
-- tailed by every node's trending and pruned after a day.
CREATE TABLE activity_feed (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
