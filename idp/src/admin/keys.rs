//! Master-key rotation, done while servers keep serving: a new key goes first in the keyring
//! (servers re-read the file when it changes, so they seal with it from their next seal), every
//! sealed value is re-sealed under it, and the old key is dropped only once nothing uses it.

use std::time::Duration;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::clock::Clock;
use crate::crypto::secretbox::{KeySource, MasterKeys};
use crate::storage::secrets::SecretRepository;
use crate::storage::{Db, StorageError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub new_key: String,
    pub resealed: usize,
    pub retired: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{0}")]
    Key(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How long servers are given to notice the new keyring before the final sweep.
const SETTLE: Duration = Duration::from_secs(2);

pub fn rotate_master(
    db: &Db,
    keys: &MasterKeys,
    auditor: &Auditor,
    clock: &dyn Clock,
    settle: Option<Duration>,
) -> Result<RotationReport, RotationError> {
    let current = keys.keyring();
    let keys = match keys.source() {
        KeySource::File(_) => {
            let next = current.with_new_active_key();
            keys.source().store(&next).map_err(|e| RotationError::Key(e.to_string()))?;
            std::thread::sleep(settle.unwrap_or(SETTLE));
            MasterKeys::new(keys.source().clone(), next)
        }
        // With the key in the environment the operator has already put the new key first
        // (IDP_MASTER_KEY="new,old"); re-seal under it.
        KeySource::Env(_) => keys.clone(),
    };
    let from_file = matches!(keys.source(), KeySource::File(_));
    let active = keys.keyring().active_id();
    let old: Vec<String> = keys.keyring().ids().into_iter().filter(|id| *id != active).map(|id| id.to_hex()).collect();
    let mut resealed = 0;
    loop {
        let n = db.write(|conn| conn.reseal_batch(&keys, 200, clock.now_naive()))?;
        resealed += n;
        let left: i64 =
            db.read(|conn| conn.secrets_per_key())?.iter().filter(|(k, _)| *k != active.to_hex()).map(|(_, n)| n).sum();
        if left == 0 {
            break;
        }
        if n == 0 {
            return Err(RotationError::Key(format!("{left} secrets could not be re-sealed")));
        }
    }
    if from_file {
        keys.source().store(&keys.keyring().only_active()).map_err(|e| RotationError::Key(e.to_string()))?;
    }
    db.write(|conn| {
        auditor.record(
            conn,
            clock.now_naive(),
            Event::new(Actor::Cli, Action::MasterKeyRotated)
                .target(active.to_hex())
                .detail("resealed", resealed)
                .detail("retired", old.join(",")),
        )
    })?;
    Ok(RotationReport { new_key: active.to_hex(), resealed, retired: old })
}
