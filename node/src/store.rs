//! Crash-safe persistence: an append-only log of checksummed records.
//!
//! Each record is `length (u32 LE) | crc32 (u32 LE) | postcard payload`. `append`
//! writes a batch and fsyncs once (group commit); the caller sends nothing that
//! depends on the batch before it returns. On open, the log is read up to the first
//! record that is incomplete or fails its checksum (a write torn by a crash), and
//! the file is truncated there, so the next append starts on a clean boundary. A
//! record whose checksum holds but which does not decode was written by another
//! version of the node: the file is refused, not truncated.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest record accepted when reading back (a corrupt length cannot allocate more).
pub const MAX_RECORD: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to {path}: {source} (disk full or read-only?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a record of {len} bytes is larger than the log takes ({max}); nothing was written")]
    TooLarge { len: usize, max: usize },
}

/// What `open` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes dropped from the tail (a torn or corrupt write).
    pub truncated_bytes: u64,
}

pub struct Store<R> {
    path: PathBuf,
    file: File,
    faults: Arc<StorageFaults>,
    _records: PhantomData<fn(R)>,
}

/// A disk fault as set (`PUT /storage`): each append's fsync held
/// `fsync_ms`, and `error_percent` of appends failing with an I/O error
/// before anything is written. Zero both: a healthy disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskFaults {
    #[serde(default)]
    pub fsync_ms: u64,
    #[serde(default)]
    pub error_percent: f64,
}

/// The live storage seam the store reads on every append.
#[derive(Debug, Default)]
pub struct StorageFaults {
    state: Mutex<DiskFaults>,
}

impl StorageFaults {
    pub fn get(&self) -> DiskFaults {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, f: DiskFaults) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }
}

impl<R: Serialize + DeserializeOwned> Store<R> {
    /// Opens (or creates) `dir/name`, returning the records it holds.
    pub fn open(dir: &Path, name: &str) -> Result<(Self, Vec<R>, Recovery), StoreError> {
        let mut records = Vec::new();
        let (store, recovery) = Self::open_each(dir, name, |r| records.push(r))?;
        Ok((store, records, recovery))
    }

    /// Opens (or creates) `dir/name`, handing each record it holds to `each`
    /// in order (one at a time: the log is never all in memory).
    pub fn open_each(
        dir: &Path,
        name: &str,
        each: impl FnMut(R),
    ) -> Result<(Self, Recovery), StoreError> {
        let path = dir.join(name);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(open_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(open_err)?;
        let size = file.metadata().map_err(open_err)?.len();
        let (records, good) = read_records(&mut file, each).map_err(|source| StoreError::Read {
            path: path.clone(),
            source,
        })?;
        if good < size {
            file.set_len(good).map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
            file.sync_all().map_err(|source| StoreError::Write {
                path: path.clone(),
                source,
            })?;
        }
        let recovery = Recovery {
            records,
            truncated_bytes: size - good,
        };
        Ok((
            Store {
                path,
                file,
                faults: Arc::default(),
                _records: PhantomData,
            },
            recovery,
        ))
    }

    /// Starts a new log `dir/name` (which must not exist) and appends to it
    /// from now on; the old one is left as it is.
    pub fn rotate(&mut self, dir: &Path, name: &str) -> Result<(), StoreError> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        if let Err(source) = sync_dir(dir) {
            // Not left behind: a log no record went to would break the
            // chain of logs a restart follows.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Write { path, source });
        }
        self.file = file;
        self.path = path;
        Ok(())
    }

    /// The file appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads disk faults from `faults` from now on.
    pub fn set_faults(&mut self, faults: Arc<StorageFaults>) {
        self.faults = faults;
    }

    /// Appends `records` and fsyncs them: durable when this returns.
    pub fn append(&mut self, records: &[R]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let faults = self.faults.get();
        if faults.error_percent > 0.0 && rand::random::<f64>() * 100.0 < faults.error_percent {
            return Err(StoreError::Write {
                path: self.path.clone(),
                source: std::io::Error::other("injected I/O error (a disk fault)"),
            });
        }
        let buf = encode(records)?;
        let write_err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(write_err)?;
        if faults.fsync_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(faults.fsync_ms));
        }
        self.file.sync_data().map_err(write_err)
    }
}

/// The records framed as the log holds them.
fn encode<R: Serialize>(records: &[R]) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    encode_into(records, &mut buf)?;
    Ok(buf)
}

/// [`encode`] into `buf` (emptied first; its room is kept and reused).
fn encode_into<R: Serialize>(records: &[R], buf: &mut Vec<u8>) -> Result<(), StoreError> {
    // Each record serialized in place after room for its header (no
    // payload of its own to allocate, grow and copy).
    buf.clear();
    let mut out = std::mem::take(buf);
    for r in records {
        let start = out.len();
        out.extend_from_slice(&[0; 8]);
        out = postcard::to_extend(r, out).expect("records serialize");
        let len = out.len() - start - 8;
        // Reopening stops at a record over the limit and drops the rest of
        // the log: one is never written.
        if len > MAX_RECORD {
            return Err(StoreError::TooLarge {
                len,
                max: MAX_RECORD,
            });
        }
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
    *buf = out;
    Ok(())
}

/// Writes `records` to `dir/name` whole or not at all: into a temporary
/// file, fsynced, renamed over `name`, and the directory fsynced.
pub fn write_file<R: Serialize>(dir: &Path, name: &str, records: &[R]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Write { path, source }
    };
    let written = (|| {
        let mut file = File::create(&tmp).map_err(write_err(&tmp))?;
        let mut buf = Vec::new();
        for chunk in records.chunks(1024) {
            encode_into(chunk, &mut buf)?;
            file.write_all(&buf).map_err(write_err(&tmp))?;
        }
        file.sync_all().map_err(write_err(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(write_err(&path))
    })();
    if written.is_err() {
        // A full disk keeps no half-written copy.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir).map_err(write_err(&path))
}

/// Reads the records of `path` in order, up to the first torn or corrupt
/// one, without changing the file; returns how many were read and whether
/// the file ended cleanly after them.
pub fn read_file<R: DeserializeOwned>(
    path: &Path,
    each: impl FnMut(R),
) -> Result<(usize, bool), StoreError> {
    let read_err = |source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    let (n, good) = read_records(&mut file, each).map_err(read_err)?;
    Ok((n, good == size))
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A record that passes its checksum but does not decode to exactly its
/// bytes (`why`: the error, or how many bytes were left over).
fn unreadable(index: usize, offset: u64, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "record {index} (at byte {offset}) passes its checksum but is not a record this \
             node reads ({why}): the file was written by another version of the node. Start this \
             node with an empty data dir, or run the version that wrote it"
        ),
    )
}

/// Reads records from the start, handing each to `each`; returns how many
/// and the offset after the last good one.
fn read_records<R: DeserializeOwned>(
    file: &mut File,
    mut each: impl FnMut(R),
) -> std::io::Result<(usize, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::with_capacity(1 << 16, &mut *file);
    let mut records = 0;
    let mut good = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 8];
        if !read_full(&mut reader, &mut header)? {
            break;
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        // No record is empty (each has its variant's tag): a zero length is
        // a tail a crash left zero-filled, cut off like any torn write.
        if len == 0 || len > MAX_RECORD {
            break;
        }
        payload.resize(len, 0);
        if !read_full(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc {
            break;
        }
        // Its checksum holds, so it is no torn write: a record of another
        // format (a node of another version wrote this file). Refused, never
        // cut off: truncating would throw history away.
        let record = match postcard::take_from_bytes(&payload) {
            Ok((record, [])) => record,
            Ok((_, rest)) => {
                let left = format!("{} bytes left over", rest.len());
                return Err(unreadable(records, good, left));
            }
            Err(e) => return Err(unreadable(records, good, e)),
        };
        each(record);
        records += 1;
        good += 8 + len as u64;
    }
    Ok((records, good))
}

/// Fills `buf`; false if the input ended first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => return Ok(false),
            n => filled += n,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct R(u32, String);

    fn records(n: u32) -> Vec<R> {
        (0..n).map(|i| R(i, "x".repeat(i as usize))).collect()
    }

    #[test]
    fn an_injected_error_writes_nothing_and_a_slow_fsync_still_persists() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        let faults = Arc::new(StorageFaults::default());
        s.set_faults(faults.clone());
        s.append(&records(2)).unwrap();
        faults.set(DiskFaults {
            fsync_ms: 0,
            error_percent: 100.0,
        });
        let err = s.append(&records(3)).unwrap_err().to_string();
        assert!(err.contains("injected I/O error"), "{err}");
        faults.set(DiskFaults {
            fsync_ms: 50,
            error_percent: 0.0,
        });
        let t = std::time::Instant::now();
        s.append(&records(1)).unwrap();
        assert!(t.elapsed() >= std::time::Duration::from_millis(50));
        drop(s);
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert_eq!(got.len(), 3, "the failed batch left nothing");
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn an_oversized_record_is_refused_and_the_log_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        s.append(&records(2)).unwrap();
        let huge = R(9, "y".repeat(MAX_RECORD + 1));
        let err = s.append(&[R(7, "z".into()), huge]).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        s.append(&records(1)).unwrap();
        drop(s);
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert_eq!(
            got.len(),
            3,
            "the refused batch left nothing, later ones are kept"
        );
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert!(got.is_empty() && rec.truncated_bytes == 0);
        s.append(&records(5)).unwrap();
        s.append(&records(2)).unwrap();
        drop(s);
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert_eq!(got.len(), 7);
        assert_eq!(got[4], R(4, "xxxx".into()));
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn a_torn_tail_is_truncated_at_every_cut_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        s.append(&records(3)).unwrap();
        let last_start = std::fs::metadata(dir.path().join("log")).unwrap().len() as usize;
        s.append(&[R(3, "xxx".into())]).unwrap();
        drop(s);
        let full = std::fs::read(dir.path().join("log")).unwrap();
        // Cut the file at every byte of the last record: the first three survive.
        for cut in last_start..full.len() {
            std::fs::write(dir.path().join("log"), &full[..cut]).unwrap();
            let (mut s, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
            assert_eq!(got, records(3), "cut at {cut}");
            assert_eq!(rec.truncated_bytes, (cut - last_start) as u64);
            // Appending after recovery yields a clean log.
            s.append(&[R(9, "new".into())]).unwrap();
            drop(s);
            let (_, got, _) = Store::<R>::open(dir.path(), "log").unwrap();
            assert_eq!(got.last(), Some(&R(9, "new".into())));
            assert_eq!(got.len(), 4);
        }
    }

    #[test]
    fn a_corrupt_record_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        s.append(&records(2)).unwrap();
        let third = std::fs::metadata(dir.path().join("log")).unwrap().len() as usize;
        s.append(&records(4)[2..]).unwrap();
        drop(s);
        let mut bytes = std::fs::read(dir.path().join("log")).unwrap();
        bytes[third + 8 + 1] ^= 0xff;
        std::fs::write(dir.path().join("log"), &bytes).unwrap();
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert_eq!(got, records(2));
        assert!(rec.truncated_bytes > 0);
        // A length prefix past the limit is not allocated.
        let mut bad = Vec::new();
        bad.extend_from_slice(&u32::MAX.to_le_bytes());
        bad.extend_from_slice(&[0; 4]);
        std::fs::write(dir.path().join("log"), &bad).unwrap();
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert!(got.is_empty());
        assert_eq!(rec.truncated_bytes, 8);
    }

    #[test]
    fn a_record_of_another_format_is_refused_not_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        s.append(&records(3)).unwrap();
        drop(s);
        let before = std::fs::read(dir.path().join("log")).unwrap();
        // A newer record type, with a field the old records lack.
        let err = match Store::<(u32, String, u64)>::open(dir.path(), "log") {
            Ok(_) => panic!("records of another format were taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("record 0 (at byte 0)"), "{err}");
        assert!(err.contains("another version of the node"), "{err}");
        assert!(err.contains("empty data dir"), "{err}");
        let after = std::fs::read(dir.path().join("log")).unwrap();
        assert_eq!(before, after, "the log was changed");
        // An older, shorter record type: bytes left over are refused too.
        let err = match Store::<(u32,)>::open(dir.path(), "log") {
            Ok(_) => panic!("records with bytes left over were taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("bytes left over"), "{err}");
        assert_eq!(before, std::fs::read(dir.path().join("log")).unwrap());
    }

    #[test]
    fn a_zero_filled_tail_is_cut_off_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _, _) = Store::<R>::open(dir.path(), "log").unwrap();
        s.append(&records(2)).unwrap();
        drop(s);
        let mut bytes = std::fs::read(dir.path().join("log")).unwrap();
        let good = bytes.len();
        // A crash after the size grew but before the data was written.
        bytes.extend_from_slice(&[0; 4096]);
        std::fs::write(dir.path().join("log"), &bytes).unwrap();
        let (_, got, rec) = Store::<R>::open(dir.path(), "log").unwrap();
        assert_eq!(got, records(2));
        assert_eq!(rec.truncated_bytes, 4096);
        let kept = std::fs::metadata(dir.path().join("log")).unwrap().len();
        assert_eq!(kept as usize, good);
    }
}
