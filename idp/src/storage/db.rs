//! The connection, the pool, migrations and transactions. This is the one place that knows
//! which backend is in use; everything above it speaks to `DbConnection`.

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StorageError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `database_url`: `postgres://` / `postgresql://`, or `sqlite://PATH` / a bare path.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            url::Url::parse(s).map_err(|_| "not a valid PostgreSQL URL")?;
            Ok(Self::Postgres(s.to_owned()))
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() { Err("sqlite:// needs a file path") } else { Ok(Self::Sqlite(path.into())) }
        } else if s.is_empty() || s.contains("://") {
            Err("expected postgres://..., sqlite://PATH or a file path")
        } else {
            Ok(Self::Sqlite(s.into()))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// For logs: the password of a PostgreSQL URL replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres(s) => match url::Url::parse(s) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    // libpq also takes `?password=...`; show no query at all.
                    u.set_query(None);
                    u.to_string()
                }
                Err(_) => "postgres://***".into(),
            },
        }
    }
}

/// Opens connections of one known backend, so a PostgreSQL URL is never mistaken for a SQLite
/// file name (the derive's `establish` would try both).
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut c = PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute("SET statement_timeout = '30s'").map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgres(c))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut c =
                    SqliteConnection::establish(&path.to_string_lossy()).map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; the busy timeout makes writers queue
                // instead of failing with "database is locked".
                c.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// The database: a pool of connections of one backend.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.url.redacted())
    }
}

pub type Conn = PooledConnection<Manager>;

impl Db {
    /// Opens the pool and checks that one connection can be made.
    pub fn open(url: &DatabaseUrl, max_connections: u32) -> Result<Db, StorageError> {
        // OpenSSL is initialised once, before the pool's threads: libpq negotiates TLS from them,
        // and racing OpenSSL's first initialisation there crashed about one start in thirty.
        openssl::init();
        if let DatabaseUrl::Sqlite(path) = url {
            create_private_file(path).map_err(|e| StorageError::Unavailable(format!("{}: {e}", path.display())))?;
        }
        let pool = Pool::builder()
            .max_size(max_connections.max(1))
            // No idle connections made in the background: a CLI command that exits while the pool
            // fills itself from another thread crashed in libpq at exit (about once in a hundred).
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .build(Manager { url: url.clone() })
            .map_err(|e| StorageError::Unavailable(format!("{}: {e}", url.redacted())))?;
        Ok(Db { pool, url: url.clone() })
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn conn(&self) -> Result<Conn, StorageError> {
        self.pool.get().map_err(|e| StorageError::Unavailable(e.to_string()))
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StorageError> {
        let mut conn = self.conn()?;
        let ran = match &mut *conn {
            DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        };
        ran.map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1").map_err(StorageError::from)
    }

    /// Runs `f` in one write transaction: committed if it returns Ok, rolled back otherwise.
    /// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`), so two
    /// writers queue on the busy timeout instead of one failing on a lock upgrade.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let mut conn = self.conn()?;
        transaction(&mut conn, f)
    }

    /// Runs `f` on a pooled connection without a transaction (single reads).
    pub fn read<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let mut conn = self.conn()?;
        f(&mut conn)
    }
}

impl Db {
    /// Runs `f` in one read-only transaction that sees a single consistent snapshot while other
    /// connections keep writing: on SQLite a deferred `BEGIN` (in WAL mode the first read fixes
    /// the snapshot), on PostgreSQL `REPEATABLE READ READ ONLY`. Always rolled back.
    pub fn snapshot<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let begun = match conn {
            DbConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED"),
            DbConnection::Postgres(c) => c.batch_execute("SET statement_timeout = 0").and_then(|_| {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            }),
        };
        begun.map_err(StorageError::from)?;
        let result = f(conn);
        if let Err(rb) = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
            tracing::error!(error = %rb, "ending the snapshot transaction failed");
        }
        if let DbConnection::Postgres(c) = conn {
            // Pooled connections keep the server-wide default timeout.
            let _ = c.batch_execute("SET statement_timeout = '30s'");
        }
        result
    }

    /// Takes a session-level lock that only one instance can hold at a time, or returns `None`
    /// when another instance holds it. On PostgreSQL an advisory lock, released when the
    /// returned guard drops; on SQLite (one host, one database file) a no-op guard.
    pub fn try_exclusive(&self, key: i64) -> Result<Option<ExclusiveGuard>, StorageError> {
        let mut conn = self.conn()?;
        let held = match &mut *conn {
            DbConnection::Sqlite(_) => true,
            DbConnection::Postgres(c) => {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!("pg_try_advisory_lock({key})")))
                    .get_result::<bool>(c)?
            }
        };
        Ok(held.then_some(ExclusiveGuard { conn: Some(conn), key }))
    }
}

/// Holds an exclusive lock from [`Db::try_exclusive`] until dropped.
pub struct ExclusiveGuard {
    conn: Option<Conn>,
    key: i64,
}

impl Drop for ExclusiveGuard {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if let DbConnection::Postgres(c) = &mut *conn {
                let unlocked = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "pg_advisory_unlock({})",
                    self.key
                )))
                .get_result::<bool>(c);
                if unlocked.is_err() {
                    tracing::warn!("could not release an advisory lock; it goes with the connection");
                }
            }
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection behind a `DbConnection`, for the few
/// statements diesel's `MultiConnection` cannot express (multi-row inserts). The branch stays
/// here, in the one file that knows the backends.
macro_rules! on_concrete {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::storage::DbConnection::Postgres($c) => $body,
            $crate::storage::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_concrete;

/// The newest migration applied to this database, or `None` on a database with none.
/// Read directly (diesel's harness would first try to create its table, which a read-only
/// snapshot refuses).
pub fn schema_version(conn: &mut DbConnection) -> Result<Option<String>, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        version: Option<String>,
    }
    let rows: Vec<Version> =
        diesel::sql_query("SELECT MAX(version) AS version FROM __diesel_schema_migrations").load(conn)?;
    Ok(rows.into_iter().next().and_then(|v| v.version))
}

/// The newest migration this build knows.
pub fn current_schema_version(backend: Backend) -> Result<String, StorageError> {
    use diesel::migration::MigrationSource;
    let names = match backend {
        Backend::Postgres => {
            MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS).map(|m: Vec<_>| versions(&m))
        }
        Backend::Sqlite => {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS).map(|m: Vec<_>| versions(&m))
        }
    };
    names
        .map_err(|e| StorageError::Migration(e.to_string()))?
        .into_iter()
        .max()
        .ok_or_else(|| StorageError::Migration("this build embeds no migrations".into()))
}

fn versions<DB: diesel::backend::Backend>(m: &[Box<dyn diesel::migration::Migration<DB>>]) -> Vec<String> {
    m.iter().map(|m| m.name().version().to_string()).collect()
}

/// Applies pending migrations on an open connection (inside the caller's transaction, if any):
/// all of them, or only those up to and including `up_to`. Returns how many ran.
pub fn migrate_conn(conn: &mut DbConnection, up_to: Option<&str>) -> Result<usize, StorageError> {
    fn run<DB: diesel::backend::Backend, C: MigrationHarness<DB>>(
        c: &mut C,
        source: EmbeddedMigrations,
        up_to: Option<&str>,
    ) -> diesel::migration::Result<usize> {
        let pending = c.pending_migrations(source)?;
        let mut ran = 0;
        for m in pending {
            if up_to.is_some_and(|limit| m.name().version().to_string().as_str() > limit) {
                break;
            }
            c.run_migration(&*m)?;
            ran += 1;
        }
        Ok(ran)
    }
    let ran = match conn {
        DbConnection::Postgres(c) => run(c, POSTGRES_MIGRATIONS, up_to),
        DbConnection::Sqlite(c) => run(c, SQLITE_MIGRATIONS, up_to),
    };
    ran.map_err(|e| StorageError::Migration(e.to_string()))
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Rows whose foreign keys point nowhere. PostgreSQL enforces them on every statement, so only
/// SQLite (where enforcement is a per-connection pragma) needs the check.
pub fn foreign_key_violations(conn: &mut DbConnection) -> Result<i64, StorageError> {
    match conn {
        DbConnection::Postgres(_) => Ok(0),
        DbConnection::Sqlite(c) => {
            let rows: Vec<Count> = diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_foreign_key_check").load(c)?;
            Ok(rows.first().map(|r| r.n).unwrap_or(0))
        }
    }
}

#[derive(diesel::QueryableByName)]
struct TableColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
}

/// Every (table, column) of the database's own tables, migrations bookkeeping excluded.
pub fn database_columns(conn: &mut DbConnection) -> Result<Vec<(String, String)>, StorageError> {
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations' \
             ORDER BY m.name, p.cid"
        }
        DbConnection::Postgres(_) => {
            "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations' \
             ORDER BY table_name, ordinal_position"
        }
    };
    let rows: Vec<TableColumn> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|r| (r.table_name, r.column_name)).collect())
}

/// One write transaction on an open connection (see [`Db::write`]).
pub fn transaction<T, E>(conn: &mut DbConnection, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
where
    E: From<StorageError>,
{
    let begun = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"),
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.map_err(StorageError::from)?;
    match f(conn) {
        Ok(v) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn).map_err(StorageError::from)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rb) = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
                tracing::error!(error = %rb, "rollback failed");
            }
            Err(e)
        }
    }
}

fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(DatabaseUrl::parse("postgres://u:p@h/db").map(|u| u.backend()), Ok(Backend::Postgres));
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/x.db"), Ok(DatabaseUrl::Sqlite("/tmp/x.db".into())));
        assert_eq!(DatabaseUrl::parse("./idp.sqlite"), Ok(DatabaseUrl::Sqlite("./idp.sqlite".into())));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        let u = DatabaseUrl::parse("postgres://user:hunter2@db.example/idp").unwrap();
        assert!(!u.redacted().contains("hunter2"));
        assert!(!format!("{u:?}").contains("hunter2"));
    }
}
