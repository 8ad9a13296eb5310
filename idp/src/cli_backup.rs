//! `idp backup create | verify | restore | list`: load the configuration, call the backup use
//! case, print one line.

use std::path::Path;

use crate::app;
use crate::audit::{Action, Actor};
use crate::backup::schedule::{self, VerifyNote};
use crate::backup::{self, BackupError};
use crate::cli::{BackupCommand, CliError, failed, state};
use crate::config::Config;
use crate::crypto::backup_key::{BackupKey, BackupKeySource};
use crate::crypto::secretbox::{KeySource, MasterKeys};
use crate::storage::DatabaseUrl;

fn describe(source: &KeySource) -> String {
    match source {
        KeySource::File(p) => p.display().to_string(),
        KeySource::Env(_) => "IDP_MASTER_KEY".into(),
    }
}

/// The configured master keys if there are any; never generates one.
fn master_keys(config: &Config) -> Result<Option<MasterKeys>, String> {
    let source = config.master_key.clone();
    if !source.exists() {
        return Ok(None);
    }
    let keyring = source.load().map_err(|e| e.to_string())?;
    Ok(Some(MasterKeys::new(source, keyring)))
}

fn backup_key_for_create(config: &Config) -> Result<BackupKey, CliError> {
    if let BackupKeySource::File(path) = &config.backup.key {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            schedule::ensure_private_dir(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        }
    }
    let (key, generated) = config.backup.key.load_or_generate().map_err(failed)?;
    if generated {
        eprintln!(
            "idp: generated a new backup key in {}: copy it, and the master key, somewhere other than the backups",
            config.backup.key.describe()
        );
    }
    Ok(key)
}

/// Records an event in the configured database when there is one to record it in.
fn audit_if_possible(config: Config, action: Action, file: &Path, error: Option<&str>) {
    if let DatabaseUrl::Sqlite(p) = &config.database {
        if !p.exists() {
            return;
        }
    }
    match state(config) {
        Ok(s) => schedule::audit(&s, action, Actor::Cli, file, error),
        Err(e) => tracing::warn!(error = %e, "could not record the audit event"),
    }
}

pub fn run(config: Config, cmd: BackupCommand) -> Result<(), CliError> {
    match cmd {
        BackupCommand::Create { output } => create(config, output),
        BackupCommand::Verify { file } => verify(config, &file),
        BackupCommand::Restore { file, force } => restore(config, &file, force),
        BackupCommand::List => list(&config),
    }
}

fn create(config: Config, output: Option<std::path::PathBuf>) -> Result<(), CliError> {
    let s = state(config)?;
    let cfg = &s.config.backup;
    let now = s.clock.now();
    let output = match output {
        Some(p) => p,
        None => {
            schedule::ensure_private_dir(&cfg.dir).map_err(|e| failed(format!("{}: {e}", cfg.dir.display())))?;
            cfg.dir.join(backup::file_name(now))
        }
    };
    let key = backup_key_for_create(&s.config)?;
    match backup::create(&s.db, &key, &output, now) {
        Ok(c) => {
            schedule::audit(&s, Action::BackupCreated, Actor::Cli, &output, None);
            println!(
                "backup written: {}: {} bytes, schema {}, {} tables, {} rows",
                c.path.display(),
                c.bytes,
                c.header.schema_version,
                c.header.tables.len(),
                c.header.total_rows()
            );
            Ok(())
        }
        Err(e) => {
            let why = e.to_string();
            schedule::audit(&s, Action::BackupCreated, Actor::Cli, &output, Some(&why));
            Err(failed(format!("backup failed: {why}; no backup file was written")))
        }
    }
}

fn verify(config: Config, file: &Path) -> Result<(), CliError> {
    let desc = describe(&config.master_key);
    let result = config
        .backup
        .key
        .load()
        .map_err(BackupError::from)
        .and_then(|key| master_keys(&config).map_err(BackupError::MasterKey).map(|m| (key, m)))
        .and_then(|(key, keys)| backup::verify(&key, keys.as_ref(), &desc, file));
    let line = match &result {
        Ok(v) => v.summary(file),
        Err(e) => format!("backup BAD: {}: {e}", file.display()),
    };
    let note = VerifyNote { at: chrono::Utc::now().to_rfc3339(), ok: result.is_ok(), message: line.clone() };
    schedule::write_note(&config.backup.dir, file, &note);
    audit_if_possible(config, Action::BackupVerified, file, result.is_err().then_some(line.as_str()));
    match result {
        Ok(_) => {
            println!("{line}");
            Ok(())
        }
        Err(_) => Err(failed(line)),
    }
}

fn restore(config: Config, file: &Path, force: bool) -> Result<(), CliError> {
    let desc = describe(&config.master_key);
    let key = config.backup.key.load().map_err(|e| failed(format!("restore failed: {e}")))?;
    let keys = master_keys(&config).map_err(|e| failed(format!("restore failed: {e}")))?;
    let db = app::connect_database(&config)?;
    let target = db.url().redacted();
    let restored = backup::restore(&db, &key, keys.as_ref(), &desc, file, force);
    drop(db);
    match restored {
        Ok(r) => {
            let s = state(config)?;
            schedule::audit(&s, Action::BackupRestored, Actor::Cli, file, None);
            println!(
                "restored {} into {target}: schema {}, {} tables, {} rows, {} sealed values open",
                file.display(),
                r.header.schema_version,
                r.header.tables.len(),
                r.header.total_rows(),
                r.sealed_checked
            );
            Ok(())
        }
        Err(e) => Err(failed(format!("restore failed: {e}; the database {target} was not changed"))),
    }
}

fn list(config: &Config) -> Result<(), CliError> {
    let dir = &config.backup.dir;
    let key = config.backup.key.load().ok();
    let listed = schedule::list(dir, key.as_ref()).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    if listed.is_empty() {
        println!("no backups in {}", dir.display());
    }
    for l in listed {
        let name = l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (time, schema) = match &l.header {
            Ok(h) => (h.created_at.clone(), format!("schema {}", h.schema_version)),
            Err(e) => ("?".into(), format!("unreadable: {e}")),
        };
        let verify = match &l.verify {
            Some(n) if n.ok => format!("verified OK {}", n.at),
            Some(n) => format!("verify FAILED {}", n.at),
            None => "never verified".into(),
        };
        println!("{name}\t{time}\t{} bytes\t{schema}\t{verify}", l.bytes);
    }
    Ok(())
}
