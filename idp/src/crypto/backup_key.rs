//! The backup key: a 256-bit key that encrypts backup files, kept apart from the master key so
//! that a stolen backup plus a stolen master key file are two separate losses, and so that the
//! backup key can be handed to whoever stores backups without handing them every sealed secret.
//!
//! Text form, in a file (mode 0600) or in `IDP_BACKUP_KEY`: `idp-backup-v1:<16 hex id>:<base64url key>`.

use std::fmt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use zeroize::Zeroizing;

use super::secretbox::write_private_atomically;

const PREFIX: &str = "idp-backup-v1";
pub const KEY_ID_LEN: usize = 8;

/// One backup key and its public id (written in each backup's header so a wrong key is named).
pub struct BackupKey {
    id: [u8; KEY_ID_LEN],
    raw: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupKey({}, ***)", hex::encode(self.id))
    }
}

impl BackupKey {
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        let mut id = [0u8; KEY_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self { id, raw }
    }

    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    pub(crate) fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
        let mut parts = line.split(':');
        if parts.next()? != PREFIX {
            return None;
        }
        let id: [u8; KEY_ID_LEN] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?);
        if parts.next().is_some() {
            return None;
        }
        let raw: [u8; 32] = raw.as_slice().try_into().ok()?;
        Some(Self { id, raw: Zeroizing::new(raw) })
    }

    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# idp backup key: encrypts backup files. Keep a copy apart from the backups and from the master key.\n\
             {PREFIX}:{}:{}\n",
            hex::encode(self.id),
            URL_SAFE_NO_PAD.encode(self.raw.as_ref())
        ))
    }
}

/// Where the backup key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum BackupKeySource {
    File(PathBuf),
    /// The key text itself, from `IDP_BACKUP_KEY`.
    Env(Zeroizing<String>),
}

impl fmt::Debug for BackupKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupKeySource::File(p) => write!(f, "File({})", p.display()),
            BackupKeySource::Env(_) => f.write_str("Env(***)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupKeyError {
    #[error(
        "backup key file {0} does not exist; copy the backup key that made this backup there, or set IDP_BACKUP_KEY"
    )]
    Missing(String),
    #[error("backup key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("backup key file {path} is readable by others (mode {mode:o}); chmod 600 it")]
    Permissions { path: String, mode: u32 },
    #[error("backup key from {0}: expected `{PREFIX}:<16 hex digits>:<base64url 32-byte key>`")]
    Invalid(String),
}

impl BackupKeySource {
    pub fn describe(&self) -> String {
        match self {
            BackupKeySource::File(p) => p.display().to_string(),
            BackupKeySource::Env(_) => "IDP_BACKUP_KEY".into(),
        }
    }

    /// Loads an existing key; never creates one (restore and verify need the key that made the backup).
    pub fn load(&self) -> Result<BackupKey, BackupKeyError> {
        match self {
            BackupKeySource::Env(text) => {
                BackupKey::parse(text).ok_or_else(|| BackupKeyError::Invalid("IDP_BACKUP_KEY".into()))
            }
            BackupKeySource::File(path) => {
                use std::os::unix::fs::PermissionsExt;
                let shown = path.display().to_string();
                let meta = match std::fs::metadata(path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BackupKeyError::Missing(shown)),
                    Err(source) => return Err(BackupKeyError::Io { path: shown, source }),
                };
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(BackupKeyError::Permissions { path: shown, mode });
                }
                let text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|source| BackupKeyError::Io { path: shown.clone(), source })?,
                );
                BackupKey::parse(&text).ok_or(BackupKeyError::Invalid(shown))
            }
        }
    }

    /// Loads the key, generating and storing one (0600, atomically) when the file does not exist yet.
    pub fn load_or_generate(&self) -> Result<(BackupKey, bool), BackupKeyError> {
        match self.load() {
            Err(BackupKeyError::Missing(shown)) => {
                let BackupKeySource::File(path) = self else { return Err(BackupKeyError::Missing(shown)) };
                let key = BackupKey::generate();
                write_private_atomically(path, key.to_text().as_bytes())
                    .map_err(|source| BackupKeyError::Io { path: shown, source })?;
                Ok((key, true))
            }
            other => other.map(|k| (k, false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let k = BackupKey::generate();
        let back = BackupKey::parse(&k.to_text()).unwrap();
        assert_eq!(back.id(), k.id());
        assert_eq!(back.raw(), k.raw());
        assert!(BackupKey::parse("idp-master-v1:0011223344556677:AAAA").is_none());
        assert!(BackupKey::parse("").is_none());
        assert!(!format!("{k:?}").contains(&URL_SAFE_NO_PAD.encode(k.raw().as_ref())));
    }

    #[test]
    fn generated_on_first_use_with_private_mode_and_loose_files_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.key");
        let source = BackupKeySource::File(path.clone());
        assert!(matches!(source.load(), Err(BackupKeyError::Missing(_))));
        let (k, created) = source.load_or_generate().unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = source.load_or_generate().unwrap();
        assert!(!created);
        assert_eq!(again.id(), k.id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(source.load(), Err(BackupKeyError::Permissions { .. })));
    }
}
