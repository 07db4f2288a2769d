-- Surge on PostgreSQL, migration 002: cluster mode (several Surge nodes on
-- one database). See README "Cluster".
--
-- Entities are placed in a fixed number of shards. A node serves a shard
-- only while it holds the shard's lease; every acquisition bumps the
-- shard's epoch. Every append a node makes names the shard and the epoch
-- it holds, and the append's transaction reads the lease row FOR SHARE and
-- refuses the append when the epoch is not the current one. Acquiring a
-- lease updates that row, so it waits for appends in flight under the old
-- epoch and every append after it sees the new one: a paused, partitioned
-- or slow node whose lease was taken over cannot write, whatever it
-- believes.

-- The cluster's fixed settings: `shards` is chosen by the first node and
-- never changes (a node configured otherwise refuses to start).
CREATE TABLE cluster_settings (
  name  text COLLATE "C" PRIMARY KEY,
  value text NOT NULL
);

-- Members: a row per node, refreshed by its heartbeat. A member whose
-- heartbeat is older than the member timeout is not placed anything.
CREATE TABLE members (
  node         text COLLATE "C" PRIMARY KEY,
  -- Where other nodes reach its inter-node listener (host:port).
  addr         text NOT NULL,
  -- A draining node hands its shards away and takes none.
  draining     boolean NOT NULL DEFAULT false,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- One row per shard: who holds it, under which epoch, until when (the
-- database's clock; nodes count their own lease time from before they
-- asked, so they stop serving before the database considers it expired).
CREATE TABLE shard_leases (
  shard      integer PRIMARY KEY CHECK (shard >= 0),
  owner      text COLLATE "C",
  epoch      bigint NOT NULL DEFAULT 0,
  expires_at timestamptz
);

-- Every epoch ever handed out and to whom: an epoch belongs to one node.
CREATE TABLE lease_epochs (
  shard       integer NOT NULL,
  epoch       bigint NOT NULL,
  owner       text COLLATE "C" NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (shard, epoch)
);

-- The epoch each event was appended under (0: single-node mode), so a
-- stream's history shows which owner wrote what.
ALTER TABLE journal ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
