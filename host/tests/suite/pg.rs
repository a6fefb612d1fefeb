//! A throwaway PostgreSQL cluster for the store and cluster tests: Debian's
//! server binaries (`.ci/run` installs the `postgresql` package), `initdb`
//! into a temp dir, trust authentication on 127.0.0.1 only, stopped when
//! dropped. PostgreSQL refuses to run as root, so under root the server
//! runs as the package's `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestPostgres {
    /// Holds the data directory and the socket; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Commits wait for the disk (`fsync = on`), as in production.
    durable: bool,
}

impl TestPostgres {
    /// initdb and start a new cluster on a free port, with `fsync = off`
    /// (a throwaway cluster need not survive a power cut; tests run faster).
    pub fn start() -> TestPostgres {
        Self::start_with(false)
    }

    /// [`TestPostgres::start`] with `fsync = on`: commit latencies as in
    /// production (the benchmark, `benches/cluster.rs`, which includes this file).
    #[allow(dead_code)]
    pub fn start_durable() -> TestPostgres {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> TestPostgres {
        let bin = server_bin_dir();
        let dir = tempfile::Builder::new().prefix("boram-pg-").tempdir().expect("tempdir");
        let as_root = is_root();
        if as_root {
            chown_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let out = postgres_command(&bin.join("initdb"), as_root)
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = TestPostgres {
            port: free_port(),
            dir,
            bin,
            durable,
        };
        pg.start_server();
        pg
    }

    /// A database URL for a new, empty database `name`.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with psql; its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-At",
                "-c",
                sql,
                database,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn stop(&self) {
        let _ = postgres_command(&self.bin.join("pg_ctl"), is_root())
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts the server again on the same port.
    pub fn start_server(&self) {
        let data = self.dir.path().join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync={} -c max_connections=200",
            self.port,
            self.dir.path().display(),
            if self.durable { "on" } else { "off" }
        );
        let status = postgres_command(&self.bin.join("pg_ctl"), is_root())
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl");
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(status.success(), "pg_ctl start failed:\n{log}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL does not listen:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian's server binaries (`/usr/lib/postgresql/N/bin`, newest N), else `pg_config --bindir`.
fn server_bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    if let Some(dir) = found.pop() {
        return dir;
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        _ => panic!("PostgreSQL's server is not installed: `apt-get install postgresql` (.ci/run does it)"),
    }
}

fn postgres_command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(
        status.success(),
        "chown postgres {}: is the postgresql package installed?",
        dir.display()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
