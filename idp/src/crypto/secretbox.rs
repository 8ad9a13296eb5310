//! Secrets at rest: AES-256-GCM under a master key kept outside the database.
//!
//! A sealed value is `"S1" || key id (8 bytes) || nonce (12 bytes) || ciphertext+tag`, with the
//! caller's context (e.g. the row id and purpose) as associated data, so a sealed value copied
//! to another row or column does not open. The master keys form a keyring: the first key seals,
//! every key opens. Rotation puts a new key first and re-seals (see `storage::secrets`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use zeroize::Zeroizing;

const MAGIC: &[u8; 2] = b"S1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
const LINE_PREFIX: &str = "idp-master-v1";

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

struct MasterKey {
    id: KeyId,
    cipher: Aes256Gcm,
    raw: Zeroizing<[u8; 32]>,
}

/// An ordered set of master keys; the first one seals.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<KeyId> = self.keys.iter().map(|k| k.id).collect();
        write!(f, "Keyring({ids:?}, keys: ***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("line {0}: expected `{LINE_PREFIX}:<16 hex digits>:<base64url 32-byte key>`")]
    BadLine(usize),
    #[error("holds no key")]
    Empty,
    #[error("key id {0} appears twice")]
    Duplicate(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed under master key {0}, which is not in the keyring")]
    UnknownKey(KeyId),
    #[error("sealed value failed authentication (corrupted, or opened in the wrong context)")]
    Corrupt,
}

impl Keyring {
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        let mut id = [0u8; KEY_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self { keys: vec![MasterKey::new(KeyId(id), raw)] }
    }

    /// Parses the keyring text: one key a line, `#` comments and blank lines ignored.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_line(line).ok_or(KeyringError::BadLine(n + 1))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(KeyringError::Duplicate(key.id.to_hex()));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = String::from(
            "# idp master keys: the first seals, all open. Keep this file secret and backed up apart from the database.\n",
        );
        for k in &self.keys {
            out.push_str(&format!("{LINE_PREFIX}:{}:{}\n", k.id.to_hex(), URL_SAFE_NO_PAD.encode(k.raw.as_ref())));
        }
        Zeroizing::new(out)
    }

    /// A keyring whose new first key seals from now on, keeping the old keys for opening.
    pub fn with_new_active_key(&self) -> Self {
        let mut next = Self::generate();
        next.keys.extend(self.keys.iter().map(|k| MasterKey::new(k.id, k.raw.clone())));
        next
    }

    /// The same keyring without the keys that no longer seal, for pruning after a rotation.
    pub fn only_active(&self) -> Self {
        Self { keys: self.keys.iter().take(1).map(|k| MasterKey::new(k.id, k.raw.clone())).collect() }
    }

    pub fn active_id(&self) -> KeyId {
        self.active().id
    }

    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    fn active(&self) -> &MasterKey {
        // `parse` and `generate` never build an empty keyring.
        #[allow(clippy::indexing_slicing)]
        &self.keys[0]
    }

    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = self.active();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(key.id, context);
        // Encryption with a valid key and nonce cannot fail for inputs under 64 GiB.
        let ct =
            key.cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad }).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id.0);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (id, nonce, ct) = split(sealed)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or(OpenError::UnknownKey(id))?;
        let aad = associated_data(id, context);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Corrupt)
    }
}

/// The id of the key a value was sealed under.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, OpenError> {
    split(sealed).map(|(id, _, _)| id)
}

fn split(sealed: &[u8]) -> Result<(KeyId, &[u8], &[u8]), OpenError> {
    if sealed.len() < HEADER_LEN + 16 || !sealed.starts_with(MAGIC) {
        return Err(OpenError::Malformed);
    }
    let (head, ct) = sealed.split_at(HEADER_LEN);
    let (id, nonce) = head.get(MAGIC.len()..).ok_or(OpenError::Malformed)?.split_at(KEY_ID_LEN);
    let id: [u8; KEY_ID_LEN] = id.try_into().map_err(|_| OpenError::Malformed)?;
    Ok((KeyId(id), nonce, ct))
}

fn associated_data(id: KeyId, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + context.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(&id.0);
    aad.extend_from_slice(context);
    aad
}

fn parse_line(line: &str) -> Option<MasterKey> {
    let mut parts = line.split(':');
    if parts.next()? != LINE_PREFIX {
        return None;
    }
    let id: [u8; KEY_ID_LEN] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?);
    if parts.next().is_some() {
        return None;
    }
    let raw: [u8; 32] = raw.as_slice().try_into().ok()?;
    Some(MasterKey::new(KeyId(id), Zeroizing::new(raw)))
}

impl MasterKey {
    fn new(id: KeyId, raw: Zeroizing<[u8; 32]>) -> Self {
        let cipher = Aes256Gcm::new(raw.as_ref().into());
        Self { id, cipher, raw }
    }
}

/// Where the master keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// The keyring text itself, from `IDP_MASTER_KEY`.
    Env(Zeroizing<String>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Env(_) => f.write_str("Env(***)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error("master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("master key file {path} is readable by others (mode {mode:o}); chmod 600 it")]
    Permissions { path: String, mode: u32 },
    #[error("master key from {origin}: {source}")]
    Invalid { origin: String, source: KeyringError },
}

impl KeySource {
    pub fn load(&self) -> Result<Keyring, KeySourceError> {
        match self {
            KeySource::Env(text) => Keyring::parse(&env_entries(text))
                .map_err(|source| KeySourceError::Invalid { origin: "IDP_MASTER_KEY".into(), source }),
            KeySource::File(path) => {
                let shown = path.display().to_string();
                check_private(path).map_err(|e| match e {
                    PrivateError::Io(source) => KeySourceError::Io { path: shown.clone(), source },
                    PrivateError::Mode(mode) => KeySourceError::Permissions { path: shown.clone(), mode },
                })?;
                let text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|source| KeySourceError::Io { path: shown.clone(), source })?,
                );
                Keyring::parse(&text).map_err(|source| KeySourceError::Invalid { origin: shown, source })
            }
        }
    }

    /// Writes a keyring to the file atomically (temp file, fsync, rename), mode 0600.
    pub fn store(&self, keyring: &Keyring) -> Result<(), KeySourceError> {
        let KeySource::File(path) = self else {
            return Ok(());
        };
        write_private_atomically(path, keyring.to_text().as_bytes())
            .map_err(|source| KeySourceError::Io { path: path.display().to_string(), source })
    }

    pub fn exists(&self) -> bool {
        match self {
            KeySource::Env(_) => true,
            KeySource::File(p) => p.exists(),
        }
    }

    fn modified(&self) -> Option<SystemTime> {
        match self {
            KeySource::File(p) => std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            KeySource::Env(_) => None,
        }
    }
}

/// `IDP_MASTER_KEY` may separate entries by commas as well as newlines.
fn env_entries(text: &str) -> Zeroizing<String> {
    let entries: Vec<&str> =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(|l| l.split(',')).collect();
    Zeroizing::new(entries.join("\n"))
}

enum PrivateError {
    Io(std::io::Error),
    Mode(u32),
}

fn check_private(path: &Path) -> Result<(), PrivateError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(PrivateError::Io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 { Err(PrivateError::Mode(mode)) } else { Ok(()) }
}

/// Writes `bytes` to `path` through a 0600 temporary file renamed into place, keeping the owner
/// of the file it replaces (so a rotation run as root leaves a file the server can still read),
/// and syncing the directory so the rename survives a crash.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(rand::random::<[u8; 8]>())));
    let owner = std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let result = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| match owner {
            Some((uid, gid)) => std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)),
            None => Ok(()),
        })
        .and_then(|_| std::fs::rename(&tmp, path))
        .and_then(|_| std::fs::File::open(dir)?.sync_all());
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The keyring a running server uses. It re-reads its source when the file changes or when a
/// value names a key it lacks, so `idp keys rotate-master` works while the server keeps serving.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    inner: Arc<RwLock<Loaded>>,
    source: KeySource,
}

#[derive(Debug)]
struct Loaded {
    keyring: Arc<Keyring>,
    modified: Option<SystemTime>,
    /// The file changed but could not be read: sealing now could use a key that is gone.
    unreadable: bool,
}

/// Sealing refused because the key file changed and cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the master key file changed and cannot be read; refusing to seal with a key that may have been rotated away")]
pub struct KeyringUnreadable;

impl MasterKeys {
    pub fn new(source: KeySource, keyring: Keyring) -> Self {
        let modified = source.modified();
        Self {
            inner: Arc::new(RwLock::new(Loaded { keyring: Arc::new(keyring), modified, unreadable: false })),
            source,
        }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The current keyring, re-read first if its file changed.
    pub fn keyring(&self) -> Arc<Keyring> {
        let stale = {
            let loaded = self.inner.read().unwrap_or_else(|p| p.into_inner());
            (self.source.modified() != loaded.modified).then_some(())
        };
        if stale.is_some() {
            self.reload();
        }
        self.inner.read().unwrap_or_else(|p| p.into_inner()).keyring.clone()
    }

    fn reload(&self) {
        let modified = self.source.modified();
        match self.source.load() {
            Ok(k) => {
                let mut loaded = self.inner.write().unwrap_or_else(|p| p.into_inner());
                loaded.keyring = Arc::new(k);
                loaded.modified = modified;
                loaded.unreadable = false;
            }
            // Keep opening with the keys we have, but seal nothing until the file reads again.
            Err(e) => {
                tracing::error!(error = %e, "could not re-read the master keys");
                self.inner.write().unwrap_or_else(|p| p.into_inner()).unreadable = true;
            }
        }
    }

    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<(KeyId, Vec<u8>), KeyringUnreadable> {
        let k = self.keyring();
        if self.inner.read().unwrap_or_else(|p| p.into_inner()).unreadable {
            return Err(KeyringUnreadable);
        }
        Ok((k.active_id(), k.seal(context, plaintext)))
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        match self.keyring().open(context, sealed) {
            Err(OpenError::UnknownKey(_)) => {
                self.reload();
                self.keyring().open(context, sealed)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let k = Keyring::generate();
        let s = k.seal(b"secret:1", b"hunter2");
        assert_eq!(k.open(b"secret:1", &s).unwrap().as_slice(), b"hunter2");
        assert_eq!(k.open(b"secret:2", &s), Err(OpenError::Corrupt));
        assert!(!s.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn fresh_nonce_each_time() {
        let k = Keyring::generate();
        assert_ne!(k.seal(b"c", b"same"), k.seal(b"c", b"same"));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = Keyring::generate();
        let s = k.seal(b"c", b"value");
        for i in 0..s.len() {
            for bit in 0..8 {
                let mut t = s.clone();
                t[i] ^= 1 << bit;
                assert!(k.open(b"c", &t).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn malformed_and_truncated_values_are_errors_not_panics() {
        let k = Keyring::generate();
        let s = k.seal(b"c", b"value");
        for n in 0..s.len() {
            assert!(k.open(b"c", &s[..n]).is_err());
        }
        assert_eq!(k.open(b"c", b""), Err(OpenError::Malformed));
        assert_eq!(k.open(b"c", &[0u8; 64]), Err(OpenError::Malformed));
    }

    #[test]
    fn wrong_keyring_names_the_missing_key() {
        let a = Keyring::generate();
        let b = Keyring::generate();
        let s = a.seal(b"c", b"v");
        assert_eq!(b.open(b"c", &s), Err(OpenError::UnknownKey(a.active_id())));
    }

    #[test]
    fn rotation_keeps_old_keys_for_opening() {
        let old = Keyring::generate();
        let s = old.seal(b"c", b"v");
        let new = old.with_new_active_key();
        assert_ne!(new.active_id(), old.active_id());
        assert_eq!(new.open(b"c", &s).unwrap().as_slice(), b"v");
        assert_eq!(sealed_key_id(&new.seal(b"c", b"v")).unwrap(), new.active_id());
        assert_eq!(new.only_active().ids(), vec![new.active_id()]);
    }

    #[test]
    fn keyring_text_round_trips_and_bad_text_is_refused() {
        let k = Keyring::generate().with_new_active_key();
        let parsed = Keyring::parse(&k.to_text()).unwrap();
        assert_eq!(parsed.ids(), k.ids());
        assert_eq!(Keyring::parse("").err(), Some(KeyringError::Empty));
        assert_eq!(Keyring::parse("garbage").err(), Some(KeyringError::BadLine(1)));
        assert_eq!(Keyring::parse("idp-master-v1:0011223344556677:c2hvcnQ").err(), Some(KeyringError::BadLine(1)));
        let line = k.to_text().lines().nth(1).unwrap().to_owned();
        assert!(matches!(Keyring::parse(&format!("{line}\n{line}")), Err(KeyringError::Duplicate(_))));
    }

    #[test]
    fn an_unreadable_changed_key_file_stops_sealing_but_not_opening() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let source = KeySource::File(path.clone());
        let k = Keyring::generate();
        source.store(&k).unwrap();
        let keys = MasterKeys::new(source.clone(), source.load().unwrap());
        let (_, sealed) = keys.seal(b"c", b"v").unwrap();
        // The file is replaced by one the server refuses (others can read it).
        std::thread::sleep(std::time::Duration::from_millis(20));
        source.store(&k.with_new_active_key()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(keys.seal(b"c", b"v").err(), Some(KeyringUnreadable));
        assert_eq!(keys.open(b"c", &sealed).unwrap().as_slice(), b"v");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        source.store(&source.load().unwrap()).unwrap();
        assert!(keys.seal(b"c", b"v").is_ok(), "sealing resumes once the file reads again");
    }

    #[test]
    fn debug_never_prints_key_material() {
        let k = Keyring::generate();
        let text = k.to_text();
        let secret = text.lines().nth(1).unwrap().rsplit(':').next().unwrap().to_owned();
        assert!(!format!("{k:?}").contains(&secret));
        assert!(!format!("{:?}", KeySource::Env(text.clone())).contains(&secret));
    }
}
