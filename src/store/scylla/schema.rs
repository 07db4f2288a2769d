//! Versioned CQL schema: the numbered files in `schema/`, applied in order by
//! `surge migrate` and checked by `surge serve`.

use ::scylla::client::session::Session;
use sha2::{Digest, Sha256};

/// One migration file, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub text: &'static str,
}

/// Every migration, in order. Append-only: a new file gets the next number
/// (a test checks this list matches `schema/`).
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "001_init.cql",
    text: include_str!("../../../schema/001_init.cql"),
}];

/// The schema version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Hex SHA-256 of a migration's text, recorded when it is applied.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Why the schema cannot be used or migrated.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("keyspace '{0}' has no Surge schema yet: run `surge migrate` first")]
    Missing(String),
    #[error("the schema of keyspace '{keyspace}' is at version {at}, this Surge needs {needs}: run `surge migrate` first")]
    Behind {
        keyspace: String,
        at: i32,
        needs: i32,
    },
    #[error("the schema of keyspace '{keyspace}' is at version {at}, newer than this Surge knows ({knows}): upgrade Surge")]
    Ahead {
        keyspace: String,
        at: i32,
        knows: i32,
    },
    #[error("migration {name} was changed after it was applied (recorded checksum {recorded}, file {file}); migrations are append-only: revert it and add a new one")]
    Edited {
        name: String,
        recorded: String,
        file: String,
    },
    #[error("migration {name}, statement {index}: {error}")]
    Statement {
        name: String,
        index: usize,
        error: String,
    },
    #[error("schema: {0}")]
    Cql(String),
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
        Err(e) => return Err(SchemaError::Cql(e.to_string())),
    };
    let rows = result
        .into_rows_result()
        .map_err(|e| SchemaError::Cql(e.to_string()))?;
    let mut out: Vec<(i32, String)> = rows
        .rows::<(i32, String)>()
        .map_err(|e| SchemaError::Cql(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| SchemaError::Cql(e.to_string()))?;
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

/// Compares what is applied with what this build needs.
fn verify(
    keyspace: &str,
    applied: &[(i32, String)],
) -> Result<Vec<&'static Migration>, SchemaError> {
    for (version, recorded) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            Some(m) => {
                let file = checksum(m.text);
                if &file != recorded {
                    return Err(SchemaError::Edited {
                        name: m.name.into(),
                        recorded: recorded.clone(),
                        file,
                    });
                }
            }
            None => {
                return Err(SchemaError::Ahead {
                    keyspace: keyspace.into(),
                    at: *version,
                    knows: latest(),
                })
            }
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

/// `surge serve`'s check: every migration applied, none edited.
pub async fn check(session: &Session, keyspace: &str) -> Result<(), SchemaError> {
    let Some(applied) = applied(session, keyspace).await? else {
        return Err(SchemaError::Missing(keyspace.into()));
    };
    let pending = verify(keyspace, &applied)?;
    if let Some(first) = pending.first() {
        return Err(SchemaError::Behind {
            keyspace: keyspace.into(),
            at: first.version - 1,
            needs: latest(),
        });
    }
    Ok(())
}

/// Applies every pending migration in order, recording each once all its
/// statements succeeded. Returns the names applied now.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
) -> Result<Vec<&'static str>, SchemaError> {
    let applied = applied(session, keyspace).await?.unwrap_or_default();
    let pending = verify(keyspace, &applied)?;
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
                .map_err(|e| SchemaError::Cql(e.to_string()))?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_ms) VALUES (?, ?, ?, ?)"
                ),
                (m.version, m.name, checksum(m.text), chrono::Utc::now().timestamp_millis()),
            )
            .await
            .map_err(|e| SchemaError::Cql(e.to_string()))?;
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
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cql"))
            .collect();
        files.sort();
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, names, "every schema/*.cql is listed in MIGRATIONS");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(m.name.starts_with(&format!("{:03}_", m.version)));
        }
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

    #[test]
    fn an_edited_or_unknown_migration_is_refused() {
        let good = vec![(1, checksum(MIGRATIONS[0].text))];
        assert!(verify("ks", &good).unwrap().is_empty());
        assert!(matches!(
            verify("ks", &[(1, "0".repeat(64))]),
            Err(SchemaError::Edited { .. })
        ));
        assert!(matches!(
            verify(
                "ks",
                &[(1, checksum(MIGRATIONS[0].text)), (999, String::new())]
            ),
            Err(SchemaError::Ahead { .. })
        ));
        assert_eq!(verify("ks", &[]).unwrap().len(), MIGRATIONS.len());
    }
}
