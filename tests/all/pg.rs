//! PostgreSQL for the tests: the shared server that `.ci/run` starts
//! (`PREREG_TEST_POSTGRES`, a URL to its `postgres` database), with a fresh
//! database per test; and private servers that a test may stop and restart
//! ([`PrivateServer`]), from the same Debian binaries.
//!
//! Without `PREREG_TEST_POSTGRES`, the PostgreSQL half of the suite is
//! skipped (with a line on stderr), unless `PREREG_REQUIRE_POSTGRES=1`
//! (`.ci/run` sets it), which makes a missing server a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared server's URL, or `None` (skip) when there is none and none is required.
pub fn server_url() -> Option<String> {
    match std::env::var("PREREG_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("PREREG_REQUIRE_POSTGRES").is_err(),
                "PREREG_REQUIRE_POSTGRES is set but PREREG_TEST_POSTGRES is not (start one with .ci/postgres)"
            );
            eprintln!("skipped: no PostgreSQL (set PREREG_TEST_POSTGRES; .ci/run does)");
            None
        }
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    format!("{root}/{database}{query}")
}

/// A database of its own on the shared server, dropped at the end.
pub struct TestDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` to skip.
    pub fn create() -> Option<TestDatabase> {
        let admin = server_url()?;
        Some(Self::create_on(&admin))
    }

    /// A new empty database on the server of `admin`.
    pub fn create_on(admin: &str) -> TestDatabase {
        let mut id = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let name = format!("prereg_test_{}", prereg::audit::hex(&id));
        let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        TestDatabase { admin: admin.to_owned(), url: with_database(admin, &name), name }
    }

    /// A client connected to it, for raw SQL.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// A PostgreSQL server of one test's own, which it can stop and start
/// (`.ci/postgres` with a folder and port of its own).
pub struct PrivateServer {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    _tmp: tempfile::TempDir,
}

impl PrivateServer {
    /// Starts one, or `None` to skip (when there is no shared server either).
    pub fn start() -> Option<PrivateServer> {
        Self::start_with_tls(None)
    }

    /// [`PrivateServer::start`], taking TLS only when `tls` names a folder
    /// holding `server.crt` and `server.key`.
    pub fn start_with_tls(tls: Option<&Path>) -> Option<PrivateServer> {
        server_url()?;
        let tmp = tempfile::Builder::new().prefix("prereg-pg").tempdir_in("/tmp").unwrap();
        // Readable by the `postgres` user, which the server runs as under root.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = PrivateServer { dir: tmp.path().join("pg"), port, url: String::new(), _tmp: tmp };
        server.url = server.control_with("start", tls);
        Some(server)
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres")
    }

    fn control(&self, action: &str) -> String {
        self.control_with(action, None)
    }

    fn control_with(&self, action: &str, tls: Option<&Path>) -> String {
        let mut command = Command::new("bash");
        command.arg(Self::script()).args([action, &self.dir.display().to_string(), &self.port.to_string()]);
        if let Some(folder) = tls {
            command.env("PREREG_PG_SSL_DIR", folder);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), ".ci/postgres {action}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops it (fast shutdown: sessions are ended).
    pub fn stop(&self) {
        self.control("stop");
    }

    /// Starts it again, on the same port.
    pub fn restart(&self) {
        self.control("start");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(Self::script()).args(["stop", &self.dir.display().to_string()]).output();
    }
}
