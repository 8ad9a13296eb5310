//! Backups: encrypted, backend-neutral snapshots of every table, and the restore rehearsal.
//!
//! - [`create`]: one consistent snapshot (see `Db::snapshot`) streamed through [`format`]'s
//!   chunked AES-256-GCM into a temporary file that is renamed into place only when complete.
//! - [`restore`]: into an empty database, in one transaction: migrations up to the backup's
//!   schema, every table loaded in foreign-key order, the rest of the migrations, every count
//!   checked, the sealed values opened with the master key; any failure rolls it all back.
//! - [`verify`]: a restore into a scratch SQLite database that is then thrown away.
//! - [`schedule`]: scheduled backups inside `idp serve`, and `idp backup list`.
//!
//! Sealed values stay sealed: a backup holds the `secrets` table as ciphertext, so restoring it
//! needs both the backup key (to read the file) and the master key (to use what it holds).

pub mod format;
pub mod schedule;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::crypto::backup_key::BackupKey;
use crate::crypto::secretbox::{MasterKeys, OpenError};
use crate::storage::dump::{self, DumpError, TABLES};
use crate::storage::secrets::SecretRepository;
use crate::storage::{
    Backend, DatabaseUrl, Db, DbConnection, StorageError, current_schema_version, foreign_key_violations, migrate_conn,
    schema_version,
};
use format::{BackupReader, BackupWriter, FormatError, Header, TableCount};

pub const FORMAT: u32 = 1;
/// The file name extension of backups in `backup.dir`.
pub const EXTENSION: &str = "idpbak";
/// Sealed values opened by `verify` beyond one per master key.
const SAMPLE: i64 = 200;

/// Why a backup, restore or verify failed: one line, saying what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error("{0}")]
    Key(#[from] crate::crypto::backup_key::BackupKeyError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Dump(DumpError),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "the database holds tables this idp does not back up ({0}): it is older than the database; use the idp that migrated it"
    )]
    Uncovered(String),
    #[error("the database has no schema yet; run `idp migrate` or start idp once")]
    NoSchema,
    #[error(
        "this backup is from a newer schema ({backup}) than this idp knows ({current}); restore it with a newer idp"
    )]
    NewerSchema { backup: String, current: String },
    #[error("the backup's format {0} is not one this idp reads")]
    UnknownFormat(u32),
    #[error(
        "the target database is not empty ({0} rows); restore into an empty database, or pass --force to replace everything in it"
    )]
    NotEmpty(i64),
    #[error("{0}")]
    MasterKey(String),
    #[error("table {table}: {got} rows after the restore, but the backup's header says {want}")]
    CountMismatch { table: String, got: i64, want: i64 },
    #[error("table {table}: {got} rows in the snapshot, but {want} were counted")]
    SnapshotMoved { table: String, got: i64, want: i64 },
    #[error("the backup holds more rows than its header lists")]
    ExtraRows,
    #[error("{0} rows have foreign keys pointing nowhere")]
    ForeignKeys(i64),
}

impl From<DumpError> for BackupError {
    fn from(e: DumpError) -> Self {
        match e {
            DumpError::Storage(s) => BackupError::Storage(s),
            other => BackupError::Dump(other),
        }
    }
}

/// A reading error from the load path: an I/O error there is the backup file's fault.
fn from_load(e: DumpError) -> BackupError {
    match e {
        DumpError::Io(io) => BackupError::Format(FormatError::from_io(io)),
        other => other.into(),
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A backup just written.
#[derive(Debug, Clone)]
pub struct Created {
    pub path: PathBuf,
    pub header: Header,
    pub bytes: u64,
}

/// The name of a scheduled backup taken at `at`.
pub fn file_name(at: DateTime<Utc>) -> String {
    format!("idp-{}.{EXTENSION}", at.format("%Y%m%dT%H%M%SZ"))
}

/// Removes the temporary file unless it was renamed into place.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes a backup of `db` to `output` (mode 0600), through a temporary file in the same
/// directory renamed into place once complete and synced.
pub fn create(db: &Db, key: &BackupKey, output: &Path, now: DateTime<Utc>) -> Result<Created, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().and_then(|n| n.to_str()).unwrap_or("backup");
    let tmp = dir.join(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple()));
    let shown = output.display().to_string();
    let werr = |source| BackupError::Write { path: shown.clone(), source };
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(werr)?;
    let mut partial = Partial { path: tmp.clone(), keep: false };
    let mut writer = BackupWriter::new(BufWriter::with_capacity(256 * 1024, file), key).map_err(werr)?;
    let header = db.snapshot(|conn| -> Result<Header, BackupError> {
        let uncovered = dump::uncovered_tables(conn)?;
        if !uncovered.is_empty() {
            return Err(BackupError::Uncovered(uncovered.join(", ")));
        }
        let schema = schema_version(conn)?.ok_or(BackupError::NoSchema)?;
        let counts = dump::count_all(conn)?;
        let header = Header {
            format: FORMAT,
            schema_version: schema,
            created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source_backend: backend_name(db.backend()).into(),
            master_key_ids: conn.secrets_per_key()?.into_iter().map(|(id, _)| id).collect(),
            tables: counts.iter().map(|(t, n)| TableCount { name: (*t).into(), rows: *n }).collect(),
        };
        serde_json::to_writer(&mut writer, &header).map_err(|e| werr(e.into()))?;
        writer.write_all(b"\n").and_then(|_| writer.end_chunk()).map_err(werr)?;
        for (table, want) in counts {
            let got = dump::dump_table(conn, table, &mut writer).map_err(|e| match e {
                DumpError::Io(io) => werr(io),
                other => other.into(),
            })?;
            if got != want {
                return Err(BackupError::SnapshotMoved { table: table.into(), got, want });
            }
        }
        Ok(header)
    })?;
    let file = writer
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all().map(|_| f))
        .map_err(werr)?;
    let bytes = file.metadata().map(|m| m.len()).map_err(werr)?;
    drop(file);
    std::fs::rename(&tmp, output).map_err(werr)?;
    partial.keep = true;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Created { path: output.to_owned(), header, bytes })
}

type Rows = BufReader<BackupReader<BufReader<File>>>;

/// Opens a backup file and reads its header (the first chunk).
pub fn open(path: &Path, key: &BackupKey) -> Result<(Header, Rows), BackupError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| BackupError::Read { path: shown, source })?;
    let reader = BackupReader::open(BufReader::with_capacity(256 * 1024, file), key)?;
    let mut rows = BufReader::with_capacity(256 * 1024, reader);
    let mut line = String::new();
    rows.read_line(&mut line).map_err(FormatError::from_io)?;
    let header: Header = serde_json::from_str(&line).map_err(|e| FormatError::BadHeader(e.to_string()))?;
    if header.format != FORMAT {
        return Err(BackupError::UnknownFormat(header.format));
    }
    Ok((header, rows))
}

/// Reads a backup's header without restoring it.
pub fn read_header(path: &Path, key: &BackupKey) -> Result<Header, BackupError> {
    open(path, key).map(|(h, _)| h)
}

fn master_key_problem(header: &Header, keys: Option<&MasterKeys>, source: &str) -> Option<String> {
    let have: Vec<String> = keys.map(|k| k.keyring().ids().iter().map(|i| i.to_hex()).collect()).unwrap_or_default();
    let missing: Vec<&String> = header.master_key_ids.iter().filter(|id| !have.contains(id)).collect();
    if missing.is_empty() {
        return None;
    }
    let ids: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    let what = if keys.is_some() {
        format!("the configured master key ({source}) does not hold it")
    } else {
        format!("no master key is configured ({source} does not exist)")
    };
    Some(format!(
        "this backup's secrets are sealed under master key {}, and {what}; set master_key_file / IDP_MASTER_KEY to the key that sealed them",
        ids.join(", ")
    ))
}

/// What a restore loaded.
#[derive(Debug, Clone)]
pub struct Restored {
    pub header: Header,
    pub migrations_after: usize,
    pub sealed_checked: usize,
}

/// Restores the backup at `path` into `db`, all or nothing (see the module docs). `force`
/// replaces the contents of a non-empty database (in the same transaction).
pub fn restore(
    db: &Db,
    key: &BackupKey,
    keys: Option<&MasterKeys>,
    master_source: &str,
    path: &Path,
    force: bool,
) -> Result<Restored, BackupError> {
    let (header, mut rows) = open(path, key)?;
    let current = current_schema_version(db.backend())?;
    if header.schema_version > current {
        return Err(BackupError::NewerSchema { backup: header.schema_version.clone(), current });
    }
    if let Some(problem) = master_key_problem(&header, keys, master_source) {
        return Err(BackupError::MasterKey(problem));
    }
    let names: Vec<&str> = header.tables.iter().map(|t| t.name.as_str()).collect();
    if let Some(unknown) = names.iter().find(|n| !TABLES.contains(n)) {
        return Err(DumpError::UnknownTable((*unknown).to_owned()).into());
    }
    db.write(|conn| -> Result<Restored, BackupError> {
        migrate_conn(conn, Some(&header.schema_version))?;
        let existing: i64 = dump::count_all(conn)?.iter().map(|(_, n)| n).sum();
        if existing > 0 {
            if !force {
                return Err(BackupError::NotEmpty(existing));
            }
            dump::delete_all(conn)?;
        }
        for t in &header.tables {
            dump::load_table(conn, &t.name, t.rows, &mut rows).map_err(from_load)?;
        }
        let mut rest = String::new();
        if rows.read_line(&mut rest).map_err(FormatError::from_io)? != 0 {
            return Err(BackupError::ExtraRows);
        }
        let migrations_after = migrate_conn(conn, None)?;
        check_counts(conn, &header)?;
        let sealed_checked = match keys {
            Some(k) => check_sealed(conn, k, master_source)?,
            None => 0,
        };
        Ok(Restored { header: header.clone(), migrations_after, sealed_checked })
    })
}

fn check_counts(conn: &mut DbConnection, header: &Header) -> Result<(), BackupError> {
    for t in &header.tables {
        let got = dump::count_rows(conn, &t.name)?;
        if got != t.rows {
            return Err(BackupError::CountMismatch { table: t.name.clone(), got, want: t.rows });
        }
    }
    Ok(())
}

fn check_sealed(conn: &mut DbConnection, keys: &MasterKeys, source: &str) -> Result<usize, BackupError> {
    let opened = conn.check_secrets_open(keys).and_then(|_| conn.check_secrets_sample(keys, SAMPLE));
    opened.map_err(|e| match e {
        StorageError::Sealed(OpenError::UnknownKey(id)) => BackupError::MasterKey(format!(
            "this backup's secrets are sealed under master key {id}, which the configured master key ({source}) does not hold; set master_key_file / IDP_MASTER_KEY to the key that sealed them"
        )),
        StorageError::Sealed(e) => BackupError::MasterKey(format!(
            "a sealed value in the backup does not open with the master key ({source}): {e}"
        )),
        other => other.into(),
    })
}

/// The verdict of a restore rehearsal.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Header,
    pub sealed_checked: usize,
}

impl Verified {
    pub fn summary(&self, path: &Path) -> String {
        format!(
            "backup OK: {}: schema {}, {} tables, {} rows, {} sealed values open",
            path.display(),
            self.header.schema_version,
            self.header.tables.len(),
            self.header.total_rows(),
            self.sealed_checked
        )
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The restore rehearsal: restores into a scratch SQLite database (the format is the same for
/// every backend, so this proves a PostgreSQL backup too), checks row counts, foreign keys and
/// that sealed values open with the master key, then deletes the scratch database.
pub fn verify(
    key: &BackupKey,
    keys: Option<&MasterKeys>,
    master_source: &str,
    path: &Path,
) -> Result<Verified, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("idp-verify-{}", uuid::Uuid::new_v4().simple()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| BackupError::Write { path: dir.display().to_string(), source })?;
    let scratch = Scratch(dir);
    let db = Db::open(&DatabaseUrl::Sqlite(scratch.0.join("verify.sqlite")), 1)?;
    let restored = restore(&db, key, keys, master_source, path, false)?;
    let violations = db.read(foreign_key_violations)?;
    if violations > 0 {
        return Err(BackupError::ForeignKeys(violations));
    }
    if keys.is_none() && !restored.header.master_key_ids.is_empty() {
        return Err(BackupError::MasterKey("no master key to check the sealed values with".into()));
    }
    drop(db);
    drop(scratch);
    Ok(Verified { header: restored.header, sealed_checked: restored.sealed_checked })
}
