-- Surge on PostgreSQL, migration 010: a shop's coupons.

-- `{shop}|{code}` → coupon: the merchant's list (deleted ones leave it).
CREATE TABLE coupons_by_shop (k text COLLATE "C" PRIMARY KEY, v bytea NOT NULL);
