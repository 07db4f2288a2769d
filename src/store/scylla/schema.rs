//! Versioned CQL schema: the numbered files in `schema/`, applied in order by
//! `surge migrate` and checked by `surge serve`.

use ::scylla::client::session::Session;

use crate::store::migrations;
pub use crate::store::migrations::{checksum, Migration, SchemaError};

/// Every migration, in order. Append-only: a new file gets the next number
/// (a test checks this list matches `schema/scylla/`).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_init.cql",
        text: include_str!("../../../schema/scylla/001_init.cql"),
    },
    Migration {
        version: 2,
        name: "002_cluster.cql",
        text: include_str!("../../../schema/scylla/002_cluster.cql"),
    },
    Migration {
        version: 3,
        name: "003_reviews.cql",
        text: include_str!("../../../schema/scylla/003_reviews.cql"),
    },
    Migration {
        version: 4,
        name: "004_behavior.cql",
        text: include_str!("../../../schema/scylla/004_behavior.cql"),
    },
    Migration {
        version: 5,
        name: "005_console.cql",
        text: include_str!("../../../schema/scylla/005_console.cql"),
    },
    Migration {
        version: 6,
        name: "006_inventory.cql",
        text: include_str!("../../../schema/scylla/006_inventory.cql"),
    },
    Migration {
        version: 7,
        name: "007_categories.cql",
        text: include_str!("../../../schema/scylla/007_categories.cql"),
    },
    Migration {
        version: 8,
        name: "008_stats.cql",
        text: include_str!("../../../schema/scylla/008_stats.cql"),
    },
    Migration {
        version: 9,
        name: "009_sale_windows.cql",
        text: include_str!("../../../schema/scylla/009_sale_windows.cql"),
    },
    Migration {
        version: 10,
        name: "010_coupons_by_shop.cql",
        text: include_str!("../../../schema/scylla/010_coupons_by_shop.cql"),
    },
    Migration {
        version: 11,
        name: "011_voucher_wallet.cql",
        text: include_str!("../../../schema/scylla/011_voucher_wallet.cql"),
    },
];

/// The schema version this build needs.
pub fn latest() -> i32 {
    migrations::latest(MIGRATIONS)
}

fn place(keyspace: &str) -> String {
    format!("keyspace '{keyspace}'")
}

/// The statements of a migration for `keyspace` with `replication`:
/// `--` comments removed, `${keyspace}` and `${replication}` replaced,
/// whitespace collapsed, split at `;`.
pub fn statements(text: &str, keyspace: &str, replication: &str) -> Vec<String> {
    let body: String = text
        .lines()
        .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    body.replace("${keyspace}", keyspace)
        .replace("${replication}", replication)
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Versions recorded as applied, with their checksums; `None` when the
/// keyspace or the record table does not exist.
pub async fn applied(
    session: &Session,
    keyspace: &str,
) -> Result<Option<Vec<(i32, String)>>, SchemaError> {
    let q = format!("SELECT version, checksum FROM {keyspace}.schema_migrations");
    let result = match session.query_unpaged(q, ()).await {
        Ok(r) => r,
        // No keyspace or no table: nothing was ever migrated here.
        Err(e) if is_missing_schema(&e.to_string()) => return Ok(None),
        Err(e) => return Err(SchemaError::Backend(e.to_string())),
    };
    let rows = result
        .into_rows_result()
        .map_err(|e| SchemaError::Backend(e.to_string()))?;
    let mut out: Vec<(i32, String)> = rows
        .rows::<(i32, String)>()
        .map_err(|e| SchemaError::Backend(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| SchemaError::Backend(e.to_string()))?;
    out.sort();
    Ok(Some(out))
}

fn is_missing_schema(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "keyspace",
        "unconfigured table",
        "does not exist",
        "not found",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// `surge serve`'s check: every migration applied, none edited.
pub async fn check(session: &Session, keyspace: &str) -> Result<(), SchemaError> {
    migrations::check(
        MIGRATIONS,
        &place(keyspace),
        applied(session, keyspace).await?,
    )
}

/// Applies every pending migration in order, recording each once all its
/// statements succeeded. Returns the names applied now.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<Vec<&'static str>, SchemaError> {
    let applied = applied(session, keyspace).await?.unwrap_or_default();
    let pending = migrations::pending(MIGRATIONS, &place(keyspace), &applied)?;
    let mut done = Vec::new();
    for m in pending {
        for (index, stmt) in statements(m.text, keyspace, replication)
            .into_iter()
            .enumerate()
        {
            session
                .query_unpaged(stmt, ())
                .await
                .map_err(|e| SchemaError::Statement {
                    name: m.name.into(),
                    index: index + 1,
                    error: e.to_string(),
                })?;
        }
        if session.get_cluster_state().get_nodes_info().len() > 1 {
            session
                .await_schema_agreement()
                .await
                .map_err(|e| SchemaError::Backend(e.to_string()))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_ms) VALUES (?, ?, ?, ?)"
                ),
                (m.version, m.name, checksum(m.text), chrono::Utc::now().timestamp_millis()),
            )
            .await
            .map_err(|e| SchemaError::Backend(e.to_string()))?;
        tracing::info!(migration = m.name, "applied");
        done.push(m.name);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_the_schema_directory_and_are_numbered_in_order() {
        migrations::assert_matches_dir(MIGRATIONS, "schema/scylla", ".cql");
    }

    #[test]
    fn every_read_table_has_a_cql_table() {
        let all: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| statements(m.text, "ks", "{'class': 'SimpleStrategy'}"))
            .collect();
        for t in super::super::tables::READ_TABLES
            .iter()
            .map(|t| t.name)
            .chain(["journal", "snapshots", "schema_migrations"])
        {
            let create = format!("CREATE TABLE IF NOT EXISTS ks.{t} (");
            assert!(
                all.iter().any(|s| s.starts_with(&create)),
                "no CREATE TABLE for {t}"
            );
        }
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {"));
        assert!(all.iter().all(|s| !s.contains("${") && !s.contains("--")));
    }
}
