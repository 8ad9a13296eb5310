//! The backup file: a short plaintext prefix, then a stream of AES-256-GCM chunks.
//!
//! ```text
//! prefix  = "IDPBAK" || version (1 byte) || file id (16 random bytes) || backup key id (8 bytes)
//! frame   = flag (0 = more follow, 1 = last) || length (u32 BE) || ciphertext+tag
//! ```
//!
//! Each file gets its own key, HMAC-SHA256(backup key, "idp-backup-file-v1" || file id), so
//! nonces (the chunk index) never repeat under one key. Every chunk's associated data is the
//! whole prefix, the chunk index and the flag: a flipped byte anywhere, chunks swapped or
//! copied from another file, a missing last chunk (truncation) or bytes after it all fail. Only
//! the prefix is readable; the header (schema version, tables and row counts, time, backend)
//! is the first chunk.

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::crypto::backup_key::{BackupKey, KEY_ID_LEN};

const MAGIC: &[u8; 6] = b"IDPBAK";
const VERSION: u8 = 1;
const FILE_ID_LEN: usize = 16;
const PREFIX_LEN: usize = MAGIC.len() + 1 + FILE_ID_LEN + KEY_ID_LEN;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MORE: u8 = 0;
const LAST: u8 = 1;

/// What is wrong with a backup file. Each is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not an idp backup file")]
    NotABackup,
    #[error("backup format version {0} is newer than this idp understands (1); use a newer idp")]
    UnsupportedVersion(u8),
    #[error(
        "this backup was encrypted with backup key {backup}, but the configured backup key is {configured}: set backup.key_file or IDP_BACKUP_KEY to the key that made it"
    )]
    WrongKey { backup: String, configured: String },
    #[error("the backup file is truncated: it ends before its last chunk")]
    Truncated,
    #[error("chunk {0} failed authentication: the file is damaged, altered or its chunks reordered")]
    Corrupt(u64),
    #[error("the backup file has data after its last chunk")]
    TrailingData,
    #[error("the backup's header is invalid: {0}")]
    BadHeader(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FormatError {
    /// Recovers a format error carried through an `io::Error` by the reader.
    pub fn from_io(e: io::Error) -> FormatError {
        if e.get_ref().is_some_and(|inner| inner.is::<FormatError>()) {
            match e.into_inner().map(|inner| inner.downcast::<FormatError>()) {
                Some(Ok(f)) => *f,
                Some(Err(other)) => FormatError::Io(io::Error::other(other)),
                None => FormatError::Io(io::Error::other("unknown error")),
            }
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            FormatError::Truncated
        } else {
            FormatError::Io(e)
        }
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// The backup's first chunk: what it holds, so restore can check it before and after loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// The newest migration applied to the source database.
    pub schema_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub source_backend: String,
    /// The master keys that seal the backup's secrets; restore needs them.
    pub master_key_ids: Vec<String>,
    /// Every table, in load order, with its row count.
    pub tables: Vec<TableCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCount {
    pub name: String,
    pub rows: i64,
}

impl Header {
    pub fn total_rows(&self) -> i64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

fn file_cipher(key: &BackupKey, file_id: &[u8]) -> io::Result<Aes256Gcm> {
    // HMAC accepts keys of any length; this never fails in practice.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.raw()).map_err(|_| io::Error::other("bad key length"))?;
    mac.update(b"idp-backup-file-v1");
    mac.update(file_id);
    let derived = zeroize::Zeroizing::new(mac.finalize().into_bytes().to_vec());
    Ok(Aes256Gcm::new(derived.as_slice().into()))
}

fn nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    for (d, s) in n.iter_mut().zip(index.to_be_bytes()) {
        *d = s;
    }
    n
}

fn aad(prefix: &[u8], index: u64, flag: u8) -> Vec<u8> {
    let mut a = Vec::with_capacity(prefix.len() + 9);
    a.extend_from_slice(prefix);
    a.extend_from_slice(&index.to_be_bytes());
    a.push(flag);
    a
}

/// Encrypts a plaintext stream into `inner`. Call [`BackupWriter::finish`]: a writer dropped
/// without it never writes the last chunk, so what it wrote reads as truncated.
pub struct BackupWriter<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    prefix: Vec<u8>,
    index: u64,
    buf: Vec<u8>,
}

impl<W: Write> BackupWriter<W> {
    pub fn new(mut inner: W, key: &BackupKey) -> io::Result<Self> {
        let mut file_id = [0u8; FILE_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut file_id);
        let mut prefix = Vec::with_capacity(PREFIX_LEN);
        prefix.extend_from_slice(MAGIC);
        prefix.push(VERSION);
        prefix.extend_from_slice(&file_id);
        prefix.extend_from_slice(&key.id());
        inner.write_all(&prefix)?;
        Ok(Self { inner, cipher: file_cipher(key, &file_id)?, prefix, index: 0, buf: Vec::with_capacity(CHUNK) })
    }

    fn seal(&mut self, flag: u8) -> io::Result<()> {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce(self.index)),
                Payload { msg: &self.buf, aad: &aad(&self.prefix, self.index, flag) },
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        let len = u32::try_from(ct.len()).map_err(|_| io::Error::other("chunk too large"))?;
        self.inner.write_all(&[flag])?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&ct)?;
        self.index += 1;
        self.buf.clear();
        Ok(())
    }

    /// Ends the current chunk here (the header is a chunk of its own).
    pub fn end_chunk(&mut self) -> io::Result<()> {
        self.seal(MORE)
    }

    /// Writes the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(LAST)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for BackupWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= CHUNK {
            self.seal(MORE)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts and authenticates a backup stream chunk by chunk. Errors surface as `io::Error`s
/// carrying a [`FormatError`] (see [`FormatError::from_io`]).
pub struct BackupReader<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    prefix: Vec<u8>,
    index: u64,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> BackupReader<R> {
    pub fn open(mut inner: R, key: &BackupKey) -> Result<Self, FormatError> {
        let mut prefix = vec![0u8; PREFIX_LEN];
        read_full(&mut inner, &mut prefix).map_err(|e| match e {
            FormatError::Truncated => FormatError::NotABackup,
            other => other,
        })?;
        if !prefix.starts_with(MAGIC) {
            return Err(FormatError::NotABackup);
        }
        let version = prefix.get(MAGIC.len()).copied().unwrap_or_default();
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let file_id = prefix.get(MAGIC.len() + 1..MAGIC.len() + 1 + FILE_ID_LEN).unwrap_or_default().to_vec();
        let key_id = prefix.get(PREFIX_LEN - KEY_ID_LEN..).unwrap_or_default();
        if key_id != key.id() {
            return Err(FormatError::WrongKey { backup: hex::encode(key_id), configured: key.id_hex() });
        }
        Ok(Self {
            cipher: file_cipher(key, &file_id)?,
            inner,
            prefix,
            index: 0,
            plain: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> Result<(), FormatError> {
        let mut head = [0u8; 5];
        read_full(&mut self.inner, &mut head)?;
        let [flag, l0, l1, l2, l3] = head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        if !(flag == MORE || flag == LAST) || !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(FormatError::Corrupt(self.index));
        }
        let mut ct = vec![0u8; len];
        read_full(&mut self.inner, &mut ct)?;
        self.plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce(self.index)),
                Payload { msg: &ct, aad: &aad(&self.prefix, self.index, flag) },
            )
            .map_err(|_| FormatError::Corrupt(self.index))?;
        self.pos = 0;
        self.index += 1;
        if flag == LAST {
            self.done = true;
            let mut extra = [0u8; 1];
            if self.inner.read(&mut extra)? != 0 {
                return Err(FormatError::TrailingData);
            }
        }
        Ok(())
    }

    /// Reads to the end, authenticating every chunk; returns the plaintext length.
    pub fn check_to_end(&mut self) -> Result<u64, FormatError> {
        io::copy(self, &mut io::sink()).map_err(FormatError::from_io)
    }
}

impl<R: Read> Read for BackupReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk().map_err(FormatError::into_io)?;
        }
        let avail = self.plain.get(self.pos..).unwrap_or_default();
        let n = avail.len().min(out.len());
        out.get_mut(..n).unwrap_or_default().copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), FormatError> {
    r.read_exact(buf)
        .map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { FormatError::Truncated } else { FormatError::Io(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &BackupKey, plain: &[u8]) -> Vec<u8> {
        let mut w = BackupWriter::new(Vec::new(), key).unwrap();
        w.write_all(b"header\n").unwrap();
        w.end_chunk().unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open_all(key: &BackupKey, file: &[u8]) -> Result<Vec<u8>, FormatError> {
        let mut r = BackupReader::open(file, key)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(FormatError::from_io)?;
        Ok(out)
    }

    fn plain() -> Vec<u8> {
        (0..(CHUNK * 2 + 1234)).map(|i| (i % 251) as u8).collect()
    }

    /// Offsets where each frame starts.
    fn frames(file: &[u8]) -> Vec<(usize, usize)> {
        let mut at = PREFIX_LEN;
        let mut out = Vec::new();
        while at < file.len() {
            let len = u32::from_be_bytes(file[at + 1..at + 5].try_into().unwrap()) as usize;
            out.push((at, 5 + len));
            at += 5 + len;
        }
        out
    }

    #[test]
    fn round_trip_in_several_chunks() {
        let k = BackupKey::generate();
        let p = plain();
        let file = sealed(&k, &p);
        assert_eq!(frames(&file).len(), 4, "header, two full chunks, the rest as the last");
        let mut expected = b"header\n".to_vec();
        expected.extend_from_slice(&p);
        assert_eq!(open_all(&k, &file).unwrap(), expected);
        assert!(!file.windows(6).any(|w| w == b"header"), "nothing readable");
    }

    #[test]
    fn every_truncation_is_detected() {
        let k = BackupKey::generate();
        let file = sealed(&k, &plain());
        for n in (0..file.len()).step_by(997).chain(frames(&file).iter().map(|(at, _)| *at)) {
            assert!(open_all(&k, &file[..n]).is_err(), "truncated at {n} of {}", file.len());
        }
        let (last_at, _) = *frames(&file).last().unwrap();
        assert!(matches!(open_all(&k, &file[..last_at]), Err(FormatError::Truncated)));
    }

    #[test]
    fn a_flipped_byte_in_any_region_is_detected() {
        let k = BackupKey::generate();
        let file = sealed(&k, &plain());
        let mut spots: Vec<usize> = (0..PREFIX_LEN).collect();
        for (at, len) in frames(&file) {
            spots.extend([at, at + 1, at + 4, at + 5, at + len / 2, at + len - 1]);
        }
        for i in spots {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(open_all(&k, &bad).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn swapped_chunks_trailing_data_and_spliced_files_are_detected() {
        let k = BackupKey::generate();
        let file = sealed(&k, &plain());
        let f = frames(&file);
        let (a, b) = (f[1], f[2]);
        assert_eq!(a.1, b.1, "two full chunks of the same size");
        let mut swapped = file[..a.0].to_vec();
        swapped.extend_from_slice(&file[b.0..b.0 + b.1]);
        swapped.extend_from_slice(&file[a.0..a.0 + a.1]);
        swapped.extend_from_slice(&file[b.0 + b.1..]);
        assert!(matches!(open_all(&k, &swapped), Err(FormatError::Corrupt(1))));

        let mut trailing = file.clone();
        trailing.push(0);
        assert!(matches!(open_all(&k, &trailing), Err(FormatError::TrailingData)));

        let other = sealed(&k, &plain());
        let mut spliced = file[..f[1].0].to_vec();
        spliced.extend_from_slice(&other[f[1].0..]);
        assert!(open_all(&k, &spliced).is_err(), "chunks of another file do not fit");
    }

    #[test]
    fn wrong_key_and_foreign_files_are_named() {
        let k = BackupKey::generate();
        let file = sealed(&k, b"rows");
        let other = BackupKey::generate();
        let e = open_all(&other, &file).unwrap_err();
        assert!(matches!(e, FormatError::WrongKey { .. }));
        assert!(e.to_string().contains(&k.id_hex()), "{e}");
        assert!(matches!(open_all(&k, b"SQLite format 3\0 and more bytes here"), Err(FormatError::NotABackup)));
        assert!(matches!(open_all(&k, b""), Err(FormatError::NotABackup)));
        let mut newer = file.clone();
        newer[MAGIC.len()] = 9;
        assert!(matches!(open_all(&k, &newer), Err(FormatError::UnsupportedVersion(9))));
    }
}
