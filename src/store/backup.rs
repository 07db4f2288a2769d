//! Backups of the embedded store: a consistent copy of everything stored
//! (one redb read transaction: every row as of one commit, while the
//! writer goes on committing), as a stream of records any machine can
//! restore into an empty data directory.
//!
//! The format: the line `SURGE-BACKUP 1\n`, then records, each a tag
//! byte: `F`, a big-endian `u32` length and a MessagePack [`Record`]; the
//! last, `E`, a big-endian `u64` record count and the CRC-32 of every byte
//! before its tag. A file without its end, with another count or
//! checksum, or with a record over [`MAX_RECORD`] is refused whole.

use std::io::Read;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::StoreError;

pub const MAGIC: &[u8] = b"SURGE-BACKUP 1\n";
/// The largest record read back (a snapshot of a very large entity).
pub const MAX_RECORD: usize = 256 << 20;
/// Bytes sent at once.
const CHUNK: usize = 256 << 10;
const END_LEN: usize = 1 + 8 + 4;

/// One stored row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Event {
        stream: String,
        seq: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Snapshot {
        stream: String,
        seq: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Row {
        table: String,
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
}

/// What a backup or a restore held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub records: u64,
    pub bytes: u64,
}

/// Writes records as chunks to `sink` (which answers false once nobody
/// wants more: the copy stops).
pub struct Writer<F: FnMut(Bytes) -> bool> {
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    summary: Summary,
    sink: F,
}

fn gone() -> StoreError {
    StoreError::Backend("the backup's reader went away".into())
}

impl<F: FnMut(Bytes) -> bool> Writer<F> {
    pub fn new(sink: F) -> Self {
        let mut w = Writer {
            buf: Vec::with_capacity(CHUNK + 1024),
            crc: crc32fast::Hasher::new(),
            summary: Summary::default(),
            sink,
        };
        w.bytes(MAGIC);
        w
    }

    fn bytes(&mut self, b: &[u8]) {
        self.crc.update(b);
        self.buf.extend_from_slice(b);
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.summary.bytes += self.buf.len() as u64;
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK + 1024),
        ));
        (self.sink)(chunk).then_some(()).ok_or_else(gone)
    }

    pub fn push(&mut self, record: &Record) -> Result<(), StoreError> {
        let body = rmp_serde::to_vec(record).map_err(StoreError::backend)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_RECORD)
            .ok_or_else(|| StoreError::Backend("a row too large to back up".into()))?;
        self.bytes(b"F");
        self.bytes(&len.to_be_bytes());
        self.bytes(&body);
        self.summary.records += 1;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the end (count and checksum) and sends what is left.
    pub fn finish(mut self) -> Result<Summary, StoreError> {
        let crc = self.crc.clone().finalize();
        self.buf.push(b'E');
        self.buf
            .extend_from_slice(&self.summary.records.to_be_bytes());
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.flush()?;
        Ok(self.summary)
    }
}

/// Why a backup cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Surge backup (or of another version)")]
    NotABackup,
    #[error("the backup ends early: it was cut off while being written or copied")]
    Truncated,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads records back, checking the end.
pub struct Reader<R: Read> {
    r: R,
    crc: crc32fast::Hasher,
    records: u64,
    bytes: u64,
    done: bool,
}

fn exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), BackupError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => BackupError::Truncated,
        _ => BackupError::Io(e),
    })
}

impl<R: Read> Reader<R> {
    pub fn new(mut r: R) -> Result<Self, BackupError> {
        let mut magic = [0u8; MAGIC.len()];
        exact(&mut r, &mut magic).map_err(|_| BackupError::NotABackup)?;
        if magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&magic);
        Ok(Reader {
            r,
            crc,
            records: 0,
            bytes: MAGIC.len() as u64,
            done: false,
        })
    }

    /// The next record; `None` after the end, once checked.
    pub fn next_record(&mut self) -> Result<Option<Record>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        exact(&mut self.r, &mut tag)?;
        match tag[0] {
            b'F' => {
                let mut len = [0u8; 4];
                exact(&mut self.r, &mut len)?;
                let n = u32::from_be_bytes(len) as usize;
                if n > MAX_RECORD {
                    return Err(BackupError::Damaged(format!("a record of {n} bytes")));
                }
                let mut body = vec![0u8; n];
                exact(&mut self.r, &mut body)?;
                self.crc.update(&tag);
                self.crc.update(&len);
                self.crc.update(&body);
                self.bytes += 5 + n as u64;
                self.records += 1;
                rmp_serde::from_slice(&body)
                    .map(Some)
                    .map_err(|e| BackupError::Damaged(format!("record {}: {e}", self.records)))
            }
            b'E' => {
                let mut end = [0u8; END_LEN - 1];
                exact(&mut self.r, &mut end)?;
                let records = u64::from_be_bytes(end[..8].try_into().expect("8 bytes"));
                let crc = u32::from_be_bytes(end[8..].try_into().expect("4 bytes"));
                if records != self.records {
                    return Err(BackupError::Damaged(format!(
                        "{} records where the end says {records}",
                        self.records
                    )));
                }
                if crc != self.crc.clone().finalize() {
                    return Err(BackupError::Damaged("the checksum does not match".into()));
                }
                let mut more = [0u8; 1];
                if self.r.read(&mut more)? != 0 {
                    return Err(BackupError::Damaged("bytes after the end".into()));
                }
                self.bytes += END_LEN as u64;
                self.done = true;
                Ok(None)
            }
            other => Err(BackupError::Damaged(format!("unknown record tag {other}"))),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            records: self.records,
            bytes: self.bytes,
        }
    }
}

/// Checks a backup as its bytes pass (to a file or a bucket): its start,
/// and at [`Check::finish`] its end record and checksum.
#[derive(Default)]
pub struct Check {
    crc: crc32fast::Hasher,
    /// The last bytes seen: the end record, once all came.
    tail: Vec<u8>,
    bytes: u64,
}

impl Check {
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), BackupError> {
        let start = self.bytes as usize;
        if start < MAGIC.len() {
            let n = (MAGIC.len() - start).min(chunk.len());
            if chunk[..n] != MAGIC[start..start + n] {
                return Err(BackupError::NotABackup);
            }
        }
        self.bytes += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > END_LEN {
            let out = self.tail.len() - END_LEN;
            self.crc.update(&self.tail[..out]);
            self.tail.drain(..out);
        }
        Ok(())
    }

    /// The bytes seen, once the end record closes them.
    pub fn finish(self) -> Result<u64, BackupError> {
        if (self.bytes as usize) < MAGIC.len() + END_LEN || self.tail[0] != b'E' {
            return Err(BackupError::Truncated);
        }
        let crc = u32::from_be_bytes(self.tail[9..].try_into().expect("4 bytes"));
        if crc != self.crc.finalize() {
            return Err(BackupError::Truncated);
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        let mut out = vec![];
        for i in 0..500u64 {
            out.push(Record::Event {
                stream: format!("user:{}", i % 7),
                seq: i,
                data: vec![i as u8; (i as usize * 37) % 3000],
            });
        }
        out.push(Record::Snapshot {
            stream: "user:1".into(),
            seq: 9,
            data: vec![1, 2, 3],
        });
        out.push(Record::Row {
            table: "users_by_email".into(),
            key: "a@example.com".into(),
            value: vec![],
        });
        out
    }

    fn written(records: &[Record]) -> (Vec<u8>, Summary, usize) {
        let mut out = Vec::new();
        let mut chunks = 0;
        let mut w = Writer::new(|b: Bytes| {
            out.extend_from_slice(&b);
            chunks += 1;
            true
        });
        for r in records {
            w.push(r).unwrap();
        }
        let summary = w.finish().unwrap();
        (out, summary, chunks)
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, BackupError> {
        let mut r = Reader::new(bytes)?;
        let mut out = vec![];
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    #[test]
    fn records_come_back_as_written_in_chunks() {
        let recs = records();
        let (bytes, summary, chunks) = written(&recs);
        assert!(chunks > 1, "sent in chunks, not held whole");
        assert_eq!(summary.records, recs.len() as u64);
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(read_all(&bytes).unwrap(), recs);
    }

    #[test]
    fn a_cut_damaged_or_foreign_file_is_refused() {
        let (bytes, _, _) = written(&records());
        for cut in [bytes.len() - 1, bytes.len() - END_LEN, bytes.len() / 2, 20] {
            assert!(
                matches!(read_all(&bytes[..cut]), Err(BackupError::Truncated)),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(read_all(&flipped).is_err(), "a flipped bit");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(BackupError::Damaged(_))));
        assert!(matches!(
            read_all(b"PK\x03\x04 a zip file"),
            Err(BackupError::NotABackup)
        ));
        // The check as bytes pass, in any chunking.
        for step in [1, 7, 4096, bytes.len()] {
            let mut check = Check::default();
            for c in bytes.chunks(step) {
                check.feed(c).unwrap();
            }
            assert_eq!(
                check.finish().unwrap(),
                bytes.len() as u64,
                "chunks of {step}"
            );
        }
        for cut in [bytes.len() - 1, bytes.len() / 2, 3] {
            let mut check = Check::default();
            check.feed(&bytes[..cut]).unwrap();
            assert!(check.finish().is_err(), "cut at {cut}");
        }
        let mut check = Check::default();
        check.feed(&flipped).unwrap();
        assert!(check.finish().is_err(), "a flipped bit");
        assert!(Check::default().feed(b"PK\x03\x04").is_err());
        // A reader that goes away stops the copy.
        let mut w = Writer::new(|_| false);
        let big = Record::Row {
            table: "t".into(),
            key: "k".into(),
            value: vec![0; CHUNK],
        };
        assert!(w.push(&big).is_err());
    }
}
