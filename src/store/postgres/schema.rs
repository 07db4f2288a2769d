//! Versioned SQL schema: the numbered files in `schema/postgres/`, applied
//! in order by `surge migrate` and checked by `surge serve`, with the rules
//! of `store::migrations` (the same as on ScyllaDB).
//!
//! Each file runs in one transaction with its record (PostgreSQL's DDL is
//! transactional), under an advisory lock, so two `surge migrate` at once
//! apply it once and a failed file leaves nothing behind.

use tokio_postgres::{Client, GenericClient};

use crate::store::migrations;
pub use crate::store::migrations::{checksum, Migration, SchemaError};

/// Every migration, in order. Append-only: a new file gets the next number
/// (a test checks this list matches `schema/postgres/`).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_init.sql",
        text: include_str!("../../../schema/postgres/001_init.sql"),
    },
    Migration {
        version: 2,
        name: "002_cluster.sql",
        text: include_str!("../../../schema/postgres/002_cluster.sql"),
    },
    Migration {
        version: 3,
        name: "003_reviews.sql",
        text: include_str!("../../../schema/postgres/003_reviews.sql"),
    },
    Migration {
        version: 4,
        name: "004_behavior.sql",
        text: include_str!("../../../schema/postgres/004_behavior.sql"),
    },
    Migration {
        version: 5,
        name: "005_console.sql",
        text: include_str!("../../../schema/postgres/005_console.sql"),
    },
    Migration {
        version: 6,
        name: "006_inventory.sql",
        text: include_str!("../../../schema/postgres/006_inventory.sql"),
    },
    Migration {
        version: 7,
        name: "007_categories.sql",
        text: include_str!("../../../schema/postgres/007_categories.sql"),
    },
    Migration {
        version: 8,
        name: "008_stats.sql",
        text: include_str!("../../../schema/postgres/008_stats.sql"),
    },
    Migration {
        version: 9,
        name: "009_sale_windows.sql",
        text: include_str!("../../../schema/postgres/009_sale_windows.sql"),
    },
    Migration {
        version: 10,
        name: "010_coupons_by_shop.sql",
        text: include_str!("../../../schema/postgres/010_coupons_by_shop.sql"),
    },
    Migration {
        version: 11,
        name: "011_voucher_wallet.sql",
        text: include_str!("../../../schema/postgres/011_voucher_wallet.sql"),
    },
];

/// The schema version this build needs.
pub fn latest() -> i32 {
    migrations::latest(MIGRATIONS)
}

fn place(schema: &str) -> String {
    format!("PostgreSQL schema '{schema}'")
}

fn backend(e: tokio_postgres::Error) -> SchemaError {
    SchemaError::Backend(super::describe(&e))
}

/// Versions recorded as applied, with their checksums; `None` when the
/// schema or its record table does not exist.
pub async fn applied(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Option<Vec<(i32, String)>>, SchemaError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(quote_ident($1) || '.schema_migrations') IS NOT NULL",
            &[&schema],
        )
        .await
        .map_err(backend)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            &format!("SELECT version, checksum FROM {schema}.schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .map_err(backend)?;
    Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

/// `surge serve`'s check: every migration applied, none edited.
pub async fn check(client: &impl GenericClient, schema: &str) -> Result<(), SchemaError> {
    migrations::check(MIGRATIONS, &place(schema), applied(client, schema).await?)
}

/// Applies every pending migration in order, each in its own transaction
/// with its record. Returns the names applied now.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<&'static str>, SchemaError> {
    let mut done = Vec::new();
    loop {
        let tx = client.transaction().await.map_err(backend)?;
        // One migrator per schema at a time; released at commit.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('surge migrate ' || $1))",
            &[&schema],
        )
        .await
        .map_err(backend)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
               version    int PRIMARY KEY,
               name       text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now()
             );
             SET LOCAL search_path TO {schema};"
        ))
        .await
        .map_err(backend)?;
        let applied = applied(&tx, schema).await?.unwrap_or_default();
        let Some(next) = migrations::pending(MIGRATIONS, &place(schema), &applied)?
            .first()
            .copied()
        else {
            tx.commit().await.map_err(backend)?;
            return Ok(done);
        };
        tx.batch_execute(next.text)
            .await
            .map_err(|e| SchemaError::Statement {
                name: next.name.into(),
                index: 1,
                error: super::describe(&e),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&next.version, &next.name, &checksum(next.text)],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(migration = next.name, schema, "applied");
        done.push(next.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_the_schema_directory_and_are_numbered_in_order() {
        migrations::assert_matches_dir(MIGRATIONS, "schema/postgres", ".sql");
    }

    #[test]
    fn every_read_table_has_a_sql_table() {
        let all: String = MIGRATIONS.iter().map(|m| m.text).collect();
        for t in crate::store::tables::ALL
            .iter()
            .chain(&["journal", "snapshots"])
        {
            assert!(
                all.contains(&format!("CREATE TABLE {t} (")),
                "no CREATE TABLE for {t}"
            );
        }
    }
}
