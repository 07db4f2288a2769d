-- Surge on PostgreSQL, migration 011: customers' voucher wallets.

-- `{user}|{code}` → empty: a voucher the customer collected.
CREATE TABLE voucher_wallet (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
