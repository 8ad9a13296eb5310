//! Test harness: databases of both backends, and the `idp` binary on a free port.
//!
//! PostgreSQL comes from `IDP_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! which `scripts/test` provides, starting a throwaway cluster when none is running). A test that
//! needs PostgreSQL and cannot reach it fails: it never skips quietly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::{PgConnection, RunQueryDsl};
use idp::storage::{DatabaseUrl, Db};

pub mod peers;

pub fn postgres_admin_url() -> String {
    std::env::var("IDP_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database, dropped at the end of the test.
pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
    Postgres { admin: String, name: String, url: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idp.sqlite");
        TestDb::Sqlite { _dir: dir, path }
    }

    pub fn postgres() -> Self {
        let admin = postgres_admin_url();
        let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {admin} ({e}); run ./scripts/test, which starts one, or set IDP_TEST_POSTGRES_URL")
        });
        let name = format!("idp_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        TestDb::Postgres { admin, name, url: url.to_string() }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    pub fn open(&self) -> Db {
        let db = Db::open(&DatabaseUrl::parse(&self.url()).unwrap(), 8).unwrap();
        db.migrate().unwrap();
        db
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    /// Every byte the database holds at rest: the SQLite files, or a `pg_dump` of the database.
    pub fn raw_bytes(&self) -> Vec<u8> {
        match self {
            TestDb::Sqlite { path, .. } => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let p = PathBuf::from(format!("{}{suffix}", path.display()));
                    if p.exists() {
                        all.extend(std::fs::read(p).unwrap());
                    }
                }
                all
            }
            TestDb::Postgres { url, .. } => {
                let out =
                    Command::new("pg_dump").arg("--no-owner").arg(url).output().expect("pg_dump must be installed");
                assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
                out.stdout
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin, name, .. } = self {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
            }
        }
    }
}

/// Runs a test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&$crate::harness::TestDb::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&$crate::harness::TestDb::postgres()) } )*
        }
    };
}

/// A port nothing listens on now and that no other test of this process was given: tests run
/// in parallel, and the OS may hand a just-released port out again before its first user binds it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn idp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_idp"))
}

/// `idp` with a clean `IDP_*` environment, run in `dir`.
pub fn idp(dir: &Path) -> Command {
    let mut c = Command::new(idp_bin());
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("IDP_") {
            c.env_remove(k);
        }
    }
    c.env("IDP_LOG_FORMAT", "text");
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A running `idp serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts `idp serve` in `dir` with the given extra environment and waits for `/healthz`.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::try_start(dir, env).unwrap_or_else(|log| panic!("idp serve did not come up:\n{log}"))
    }

    pub fn try_start(dir: &Path, env: &[(&str, &str)]) -> Result<Server, String> {
        Self::try_start_at(dir, free_port(), env)
    }

    /// Starts on a chosen port, for peers that must know idp's URL first.
    pub fn start_at(dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        Self::try_start_at(dir, port, env).unwrap_or_else(|log| panic!("idp serve did not come up:\n{log}"))
    }

    pub fn try_start_at(dir: &Path, port: u16, env: &[(&str, &str)]) -> Result<Server, String> {
        let base = format!("http://127.0.0.1:{port}");
        let log = dir.join(format!("idp-{port}.log"));
        let mut cmd = idp(dir);
        cmd.arg("serve").env("IDP_BIND", format!("127.0.0.1:{port}")).env("IDP_PUBLIC_URL", &base);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("idp-{port}.err"))).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child, base, dir: dir.to_owned(), log };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = server.child.try_wait().unwrap() {
                return Err(format!("exited with {status}: {}", server.stderr()));
            }
            if let Ok(r) = client().get(format!("{}/healthz", server.base)).send() {
                if r.status() == 200 {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("no /healthz within 20 s: {}", server.stderr()))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        let err = PathBuf::from(self.log.to_string_lossy().replace(".log", ".err"));
        if let Ok(mut f) = std::fs::File::open(err) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that does not follow redirects, so tests see each answer.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
