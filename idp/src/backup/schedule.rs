//! Scheduled backups inside `idp serve`, their retention, the last-verify notes beside each
//! file, and the listing behind `idp backup list`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::format::Header;
use super::{BackupError, Created, EXTENSION};
use crate::app::AppState;
use crate::audit::{Action, Actor, Event, Outcome};
use crate::crypto::backup_key::BackupKey;

/// Advisory-lock key for "one instance takes the scheduled backup" ("idpbakup" in ASCII).
pub const LOCK_KEY: i64 = 0x6964_7062_616b_7570;

/// When scheduled backups run: `backup.schedule = "6h"` (an interval, at least 1m) or
/// `"daily 03:00"` (once a day at that UTC time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    DailyAt(NaiveTime),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(at) = text.strip_prefix("daily") {
            let at = at.trim();
            return NaiveTime::parse_from_str(at, "%H:%M")
                .map(Schedule::DailyAt)
                .map_err(|_| format!("{at:?} is not a time of day"));
        }
        let every =
            humantime::parse_duration(text).map_err(|_| format!("{text:?} is neither an interval nor daily HH:MM"))?;
        if every < Duration::from_secs(60) {
            return Err(format!("{text:?} is shorter than a minute"));
        }
        Ok(Schedule::Every(every))
    }

    /// The next run after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::days(1)),
            Schedule::DailyAt(t) => {
                let today = now.date_naive().and_time(*t).and_utc();
                if today > now { today } else { today + chrono::Duration::days(1) }
            }
        }
    }
}

/// What the scheduler reports to `/readyz`.
#[derive(Debug, Default)]
pub struct BackupStatus {
    failures: AtomicU64,
    last_success: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl BackupStatus {
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn failed(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_owned());
    }

    pub fn succeeded(&self, at: DateTime<Utc>) {
        *self.last_success.lock().unwrap_or_else(|p| p.into_inner()) = Some(at.to_rfc3339());
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "failures": self.failures(),
            "last_success": *self.last_success.lock().unwrap_or_else(|p| p.into_inner()),
            "last_error": *self.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }
}

/// The note `verify` leaves beside a file in `backup.dir`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyNote {
    pub at: String,
    pub ok: bool,
    pub message: String,
}

fn note_path(backup: &Path) -> PathBuf {
    let mut p = backup.as_os_str().to_owned();
    p.push(".verify");
    PathBuf::from(p)
}

/// Records a verify result beside `backup` when it lies in `dir` (other files are left alone).
pub fn write_note(dir: &Path, backup: &Path, note: &VerifyNote) {
    let inside = match (dir.canonicalize(), backup.parent().map(|p| p.canonicalize())) {
        (Ok(d), Some(Ok(p))) => d == p,
        _ => false,
    };
    if inside {
        if let Ok(text) = serde_json::to_vec(note) {
            if let Err(e) = crate::crypto::secretbox::write_private_atomically(&note_path(backup), &text) {
                tracing::warn!(error = %e, "could not record the verify result");
            }
        }
    }
}

/// One file of `idp backup list`.
#[derive(Debug)]
pub struct Listed {
    pub path: PathBuf,
    pub bytes: u64,
    pub header: Result<Header, String>,
    pub verify: Option<VerifyNote>,
}

/// The backups in `dir`, oldest first. Partial files of a running or interrupted backup are skipped.
pub fn list(dir: &Path, key: Option<&BackupKey>) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let header = match key {
            Some(k) => super::read_header(&path, k).map_err(|e| e.to_string()),
            None => Err("no backup key".into()),
        };
        let verify = std::fs::read(note_path(&path)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        out.push(Listed { path, bytes, header, verify });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Deletes backups in `dir` older than `keep_days` (by modification time); returns how many.
pub fn prune(dir: &Path, keep_days: u32) -> std::io::Result<usize> {
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(u64::from(keep_days) * 86_400);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let old = std::fs::metadata(&path).and_then(|m| m.modified()).map(|m| m < cutoff).unwrap_or(false);
        if old {
            std::fs::remove_file(&path)?;
            let _ = std::fs::remove_file(note_path(&path));
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates `dir` (and parents) with mode 0700, tightening an existing one others can read.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Records a backup, verify or restore in the audit log; a failure to record is logged only.
pub fn audit(state: &AppState, action: Action, actor: Actor, target: &Path, error: Option<&str>) {
    let now = state.clock.now_naive();
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut event = Event::new(actor, action).target(name);
    if let Some(why) = error {
        event = event.outcome(Outcome::Failure).detail("error", why);
    }
    if let Err(e) = state.db.write(|c| state.auditor.record(c, now, event)) {
        tracing::warn!(error = %e, action = action.as_str(), "could not record the audit event");
    }
}

/// One scheduled run: backup into `backup.dir`, verify it, prune old ones. `Ok(None)` when
/// another instance holds the lock and takes this one.
pub fn run_once(state: &AppState) -> Result<Option<Created>, BackupError> {
    let Some(_lock) = state.db.try_exclusive(LOCK_KEY)? else { return Ok(None) };
    let cfg = &state.config.backup;
    ensure_private_dir(&cfg.dir)
        .map_err(|source| BackupError::Write { path: cfg.dir.display().to_string(), source })?;
    let (key, _) = cfg.key.load_or_generate()?;
    let now = state.clock.now();
    let path = cfg.dir.join(super::file_name(now));
    let created = super::create(&state.db, &key, &path, now);
    let failure = created.as_ref().err().map(|e| e.to_string());
    audit(state, Action::BackupCreated, Actor::System, &path, failure.as_deref());
    let created = created?;
    let verified = super::verify(&key, Some(&state.keys), &describe_master(state), &path);
    let message = match &verified {
        Ok(v) => v.summary(&path),
        Err(e) => format!("backup BAD: {}: {e}", path.display()),
    };
    write_note(
        &cfg.dir,
        &path,
        &VerifyNote { at: Utc::now().to_rfc3339(), ok: verified.is_ok(), message: message.clone() },
    );
    audit(state, Action::BackupVerified, Actor::System, &path, verified.is_err().then_some(message.as_str()));
    verified?;
    let pruned = prune(&cfg.dir, cfg.keep_days)
        .map_err(|source| BackupError::Write { path: cfg.dir.display().to_string(), source })?;
    tracing::info!(file = %path.display(), bytes = created.bytes, pruned, "scheduled backup taken and verified");
    Ok(Some(created))
}

pub fn describe_master(state: &AppState) -> String {
    match state.keys.source() {
        crate::crypto::secretbox::KeySource::File(p) => p.display().to_string(),
        crate::crypto::secretbox::KeySource::Env(_) => "IDP_MASTER_KEY".into(),
    }
}

/// Starts the scheduler thread when `backup.schedule` is set.
pub fn spawn(state: AppState) {
    let Some(schedule) = state.config.backup.schedule else { return };
    let spawned = std::thread::Builder::new().name("idp-backups".into()).spawn(move || {
        loop {
            let now = Utc::now();
            let next = schedule.next_after(now);
            std::thread::sleep((next - now).to_std().unwrap_or(Duration::from_secs(60)));
            match run_once(&state) {
                Ok(Some(_)) => state.backups.succeeded(Utc::now()),
                Ok(None) => tracing::info!("scheduled backup skipped: another instance holds the lock"),
                Err(e) => {
                    tracing::error!(error = %e, "scheduled backup failed");
                    state.backups.failed(&e.to_string());
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the backup scheduler");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_step() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(Schedule::parse("6h"), Ok(Schedule::Every(Duration::from_secs(6 * 3600))));
        let daily = Schedule::parse("daily 03:00").unwrap();
        assert_eq!(daily.next_after(at("2026-12-02T02:00:00Z")), at("2026-12-02T03:00:00Z"));
        assert_eq!(daily.next_after(at("2026-12-02T03:00:00Z")), at("2026-12-03T03:00:00Z"));
        assert_eq!(
            Schedule::Every(Duration::from_secs(60)).next_after(at("2026-12-02T00:00:00Z")),
            at("2026-12-02T00:01:00Z")
        );
        for bad in ["", "10s", "daily 25:00", "weekly", "daily"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
