//! A private PostgreSQL for the tests: one cluster per test process, in a temporary
//! directory, on a free loopback port, started on first use and stopped when the process
//! ends; each test (each Mailroom data directory) gets its own database.
//!
//! The end-to-end suite runs against it when `MAILROOM_TEST_STORE=postgres`
//! (`scripts/test.sh` runs the suite once on each backend).

use crate::servers::{free_ports, run};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether this run's Mailroom servers keep their state in PostgreSQL.
pub fn selected() -> bool {
    std::env::var("MAILROOM_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// Tells a test's child process (a server the test kills) the cluster to use.
const PORT_ENV: &str = "MAILROOM_TEST_POSTGRES_PORT";

pub struct Cluster {
    port: u16,
    bin: PathBuf,
    /// The cluster's files and the shell that stops the server when this end of its input
    /// closes (when the process ends, however it ends); none in a child process, which
    /// uses its parent's cluster.
    _owned: Option<(tempfile::TempDir, Child, ChildStdin)>,
}

/// The cluster of this test process (or of the test that started it): for speed, it
/// neither syncs to disk nor waits for its commits to be written.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match std::env::var(PORT_ENV) {
        Ok(port) => Cluster {
            port: port.parse().expect("a port"),
            bin: binaries(),
            _owned: None,
        },
        Err(_) => Cluster::start(false),
    })
}

/// A new database in a cluster that commits durably, as a production one does (for the
/// benchmarks).
pub fn durable_database() -> String {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    CLUSTER
        .get_or_init(|| Cluster::start(true))
        .database(&format!("d{n}"))
}

/// What a child process started by a test needs in its environment to use this process's
/// cluster (nothing when the tests do not use PostgreSQL).
pub fn child_env() -> Vec<(&'static str, String)> {
    if selected() {
        vec![(PORT_ENV, cluster().port.to_string())]
    } else {
        Vec::new()
    }
}

/// The URL of the database of a data directory, created on first use (a server started
/// again on the same directory, in this process or a child, finds the same database).
pub fn database_for(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    cluster().database(&format!("t{:016x}", hasher.finish()))
}

/// A new, empty database with a name of its own.
pub fn fresh_database() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    cluster().database(&format!("f{}_{n}", std::process::id()))
}

impl Cluster {
    fn start(durable: bool) -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().expect("a directory for PostgreSQL");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the cluster's directory");
        let as_root = is_root();
        if as_root {
            // PostgreSQL refuses to run as root: its files belong to its own user.
            std::fs::set_permissions(
                dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .expect("a readable directory");
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&data),
                "hand the cluster's files to postgres",
            );
        }
        run(
            command(as_root, &bin.join("initdb"))
                .args([
                    "--auth=trust",
                    "--username=mailroom",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .arg("-D")
                .arg(&data),
            "initdb",
        );
        let [port] = free_ports();
        let quick = if durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let server = format!(
            "{} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400{quick}",
            bin.join("postgres").display(),
            data.display(),
            data.display(),
        );
        // The server runs until the shell's input ends (when this process ends, however it
        // ends): then it is told to stop at once, and its files go.
        let script = format!(
            "{server} & pid=$!; read _; kill -QUIT $pid; wait $pid; rm -rf {}",
            data.display()
        );
        let mut keeper = command(as_root, Path::new("sh"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("PostgreSQL starts");
        let stdin = keeper.stdin.take().expect("the keeper's input");
        let cluster = Self {
            port,
            bin,
            _owned: Some((dir, keeper, stdin)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.ready() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// One of PostgreSQL's client programs, pointed at this cluster.
    fn tool(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        let port = self.port.to_string();
        command.args(["-h", "127.0.0.1", "-p", &port, "-U", "mailroom"]);
        command
    }

    fn ready(&self) -> bool {
        self.tool("pg_isready")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The URL of the database `name`, created when missing.
    pub fn database(&self, name: &str) -> String {
        let output = self
            .tool("createdb")
            .arg(name)
            .output()
            .expect("createdb runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() || stderr.contains("already exists"),
            "createdb {name}: {stderr}"
        );
        self.url(name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://mailroom@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL in a database with `psql`; returns what it printed (unaligned, tuples only).
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let output = self
            .tool("psql")
            .args(["-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

/// Where Debian keeps the newest PostgreSQL's programs.
fn binaries() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (tests/fixtures/install.sh)")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            Some((version, path.join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version in /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A command run as PostgreSQL's user when this process is root.
fn command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}
