//! The rules every backend's schema follows: numbered, append-only
//! migration files embedded in the binary, applied in order by `surge
//! migrate`, each recorded with the SHA-256 of its text; `surge serve`
//! refuses a schema that is behind, ahead of this build, or whose applied
//! files were edited. The backends only say how to read the record and how
//! to apply one file (`scylla::schema`, `postgres::schema`).

use sha2::{Digest, Sha256};

/// One migration file, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub text: &'static str,
}

/// The schema version a list of migrations brings a store to.
pub fn latest(all: &[Migration]) -> i32 {
    all.last().map(|m| m.version).unwrap_or(0)
}

/// Hex SHA-256 of a migration's text, recorded when it is applied.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Why the schema cannot be used or migrated. `place` names where the
/// schema lives (`keyspace 'surge'`, `schema 'surge'`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0} has no Surge schema yet: run `surge migrate` first")]
    Missing(String),
    #[error("the schema of {place} is at version {at}, this Surge needs {needs}: run `surge migrate` first")]
    Behind { place: String, at: i32, needs: i32 },
    #[error("the schema of {place} is at version {at}, newer than this Surge knows ({knows}): upgrade Surge")]
    Ahead { place: String, at: i32, knows: i32 },
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
    Backend(String),
}

/// Compares what is applied (version, checksum) with `all`; returns the
/// migrations still to apply, in order.
pub fn pending<'a>(
    all: &'a [Migration],
    place: &str,
    applied: &[(i32, String)],
) -> Result<Vec<&'a Migration>, SchemaError> {
    for (version, recorded) in applied {
        match all.iter().find(|m| m.version == *version) {
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
                    place: place.into(),
                    at: *version,
                    knows: latest(all),
                })
            }
        }
    }
    Ok(all
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

/// `surge serve`'s check: a record exists (`applied` is `Some`), every
/// migration is applied, none edited, none unknown.
pub fn check(
    all: &[Migration],
    place: &str,
    applied: Option<Vec<(i32, String)>>,
) -> Result<(), SchemaError> {
    let Some(applied) = applied else {
        return Err(SchemaError::Missing(place.into()));
    };
    if let Some(first) = pending(all, place, &applied)?.first() {
        return Err(SchemaError::Behind {
            place: place.into(),
            at: first.version - 1,
            needs: latest(all),
        });
    }
    Ok(())
}

/// Checks that `all` matches the files with `extension` in `dir`, numbered
/// 1, 2, 3… in order (for the backends' tests).
#[cfg(test)]
pub(crate) fn assert_matches_dir(all: &[Migration], dir: &str, extension: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(extension))
        .collect();
    files.sort();
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    assert_eq!(files, names, "every file in {} is listed", dir.display());
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.version, i as i32 + 1);
        assert!(m.name.starts_with(&format!("{:03}_", m.version)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Migration] = &[
        Migration {
            version: 1,
            name: "001_a",
            text: "a",
        },
        Migration {
            version: 2,
            name: "002_b",
            text: "b",
        },
    ];

    #[test]
    fn an_edited_unknown_or_missing_migration_is_refused() {
        let good = vec![(1, checksum("a")), (2, checksum("b"))];
        assert!(pending(ALL, "ks", &good).unwrap().is_empty());
        check(ALL, "ks", Some(good.clone())).unwrap();
        assert!(matches!(
            pending(ALL, "ks", &[(1, "0".repeat(64))]),
            Err(SchemaError::Edited { .. })
        ));
        let mut ahead = good.clone();
        ahead.push((3, String::new()));
        assert!(matches!(
            pending(ALL, "ks", &ahead),
            Err(SchemaError::Ahead {
                at: 3,
                knows: 2,
                ..
            })
        ));
        assert_eq!(pending(ALL, "ks", &[]).unwrap().len(), 2);
        assert!(matches!(
            check(ALL, "ks", Some(vec![(1, checksum("a"))])),
            Err(SchemaError::Behind {
                at: 1,
                needs: 2,
                ..
            })
        ));
        let missing = check(ALL, "keyspace 'ks'", None).unwrap_err().to_string();
        assert!(missing.contains("keyspace 'ks'") && missing.contains("surge migrate"));
    }
}
