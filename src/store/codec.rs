//! Encoding of events and snapshots: MessagePack (rmp-serde, named fields)
//! wrapped as `[version, data]`, so a record says which schema wrote it.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// Encodes `data` written with schema `version`.
pub fn encode<T: Serialize>(version: u16, data: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(&(version, data)).map_err(|e| StoreError::Codec(e.to_string()))
}

/// `encode` into a buffer of `capacity` bytes to begin with: a large
/// record (a snapshot of thousands of claims) whose size is about known
/// is written once, not copied at every doubling of its buffer.
pub fn encode_sized<T: Serialize>(
    version: u16,
    data: &T,
    capacity: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(capacity);
    rmp_serde::encode::write_named(&mut buf, &(version, data))
        .map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(buf)
}

/// Decodes a record, refusing one written by a newer schema than `current`.
/// Deserializes `T` through `S` (`#[serde(deserialize_with = "…")]`): for
/// collections whose own `Deserialize` preallocates the length the bytes
/// claim (imbl's), decoded through the std collection, whose serde impl
/// caps preallocation. Found by fuzzing (`fuzz/`, `journal_codec`).
pub fn via<'de, D, S, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    S: serde::Deserialize<'de>,
    T: From<S>,
{
    S::deserialize(d).map(T::from)
}

pub fn decode<T: DeserializeOwned>(current: u16, bytes: &[u8]) -> Result<T, StoreError> {
    let (version, data): (u16, T) =
        rmp_serde::from_slice(bytes).map_err(|e| StoreError::Codec(e.to_string()))?;
    if version > current {
        return Err(StoreError::Codec(format!(
            "record written by schema version {version}, this build reads up to {current}"
        )));
    }
    Ok(data)
}

/// Decodes a snapshot, which is only a cache of state: one written by any
/// other schema version is refused, and the caller replays events instead.
pub fn decode_snapshot<T: DeserializeOwned>(current: u16, bytes: &[u8]) -> Result<T, StoreError> {
    let (version, data): (u16, T) =
        rmp_serde::from_slice(bytes).map_err(|e| StoreError::Codec(e.to_string()))?;
    if version != current {
        return Err(StoreError::Codec(format!(
            "snapshot of schema version {version}, this build keeps version {current}"
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Ev {
        a: u32,
        b: String,
    }

    #[test]
    fn round_trips_with_version() {
        let bytes = encode(
            3,
            &Ev {
                a: 1,
                b: "x".into(),
            },
        )
        .unwrap();
        assert_eq!(
            decode::<Ev>(3, &bytes).unwrap(),
            Ev {
                a: 1,
                b: "x".into()
            }
        );
        assert_eq!(decode::<Ev>(4, &bytes).unwrap().a, 1);
    }

    #[test]
    fn a_sized_encoding_is_the_same_bytes_whatever_the_capacity() {
        let ev = Ev {
            a: 7,
            b: "a string longer than the smallest capacity".into(),
        };
        let plain = encode(2, &ev).unwrap();
        for capacity in [0, 3, plain.len(), 1 << 16] {
            assert_eq!(encode_sized(2, &ev, capacity).unwrap(), plain);
        }
    }

    #[test]
    fn refuses_newer_schema() {
        let bytes = encode(
            5,
            &Ev {
                a: 1,
                b: "x".into(),
            },
        )
        .unwrap();
        let err = decode::<Ev>(4, &bytes).unwrap_err();
        assert!(err.to_string().contains("version 5"), "{err}");
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            decode::<Ev>(1, b"\xc1\xc1"),
            Err(StoreError::Codec(_))
        ));
    }
}
