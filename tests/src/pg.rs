//! A PostgreSQL server of one test's own, to stop, restart and cut off at will: the
//! machine's server is shared by every test and never touched.
//!
//! `initdb` into a temporary folder, then `pg_ctl` on a free port, listening on 127.0.0.1
//! and on a socket in that folder (not in /var/run/postgresql). PostgreSQL refuses to run
//! as root: as root the commands run as the `postgres` user (`runuser`), the folder given to
//! it. The binaries are `$LIFECYCLE_TEST_PG_BIN`, else `pg_config --bindir`'s, else
//! /usr/lib/postgresql/15/bin. Dropping it stops the server (`-m immediate`), and kills the
//! postmaster if it is still there, so that no test leaves a server behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct PrivatePg {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

impl PrivatePg {
    /// Initialises and starts a server; panics saying why when it cannot.
    pub fn start() -> PrivatePg {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("lifecycle-pg-").tempdir().expect("a temp dir for PostgreSQL");
        let as_postgres = is_root();
        if as_postgres {
            let uid = postgres_uid();
            std::os::unix::fs::chown(dir.path(), Some(uid), None).expect("giving the folder to the postgres user");
        }
        let mut pg = PrivatePg { port: free_port(), bin, dir, as_postgres };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        // Another process may take the port between `free_port` and the start: try another.
        for attempt in 0..3 {
            if pg.try_start() {
                return pg;
            }
            assert!(attempt < 2, "the private PostgreSQL did not start:\n{}", pg.log());
            pg.port = free_port();
        }
        unreachable!()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: where a test creates its databases.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `pg_ctl stop -m fast`: every session is ended, the server shuts down cleanly and
    /// refuses connections until [`PrivatePg::resume`].
    pub fn stop_fast(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "-t", "30", "stop"]);
    }

    /// Starts the stopped server again, on the same port.
    pub fn resume(&self) {
        assert!(self.try_start(), "the private PostgreSQL did not start again:\n{}", self.log());
    }

    /// `pg_ctl restart -m fast`, down for `down` in between; returns when it accepts connections.
    pub fn restart(&self, down: Duration) {
        self.stop_fast();
        std::thread::sleep(down);
        self.resume();
    }

    /// Ends every session on `database` but the caller's (`pg_terminate_backend`); how many.
    pub async fn terminate_sessions(&self, database: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let admin = Database::connect(self.admin_url()).await.expect("the private PostgreSQL answers");
        let row = admin
            .query_one(Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                [database.into()],
            ))
            .await
            .expect("terminating sessions")
            .expect("a count");
        let _ = admin.close().await;
        row.try_get::<i64>("", "n").expect("a number")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The postmaster's pid while the server runs (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.path().join("data").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn try_start(&self) -> bool {
        let (data, log, socket) = (self.data(), self.path("server.log"), self.path(""));
        let options = format!(
            "-p {} -k {socket} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
            self.port
        );
        self.command("pg_ctl")
            .args(["-D", &data, "-l", &log, "-w", "-t", "30", "-o", &options, "start"])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn data(&self) -> String {
        self.path("data")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().trim_end_matches('/').to_string()
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.current_dir(self.dir.path()).stdout(std::process::Stdio::null());
        c
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let pid = self.postmaster_pid();
        let data = self.data();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "-t", "10", "stop"]).status();
        // Still there (pg_ctl failed or timed out): the postmaster and its children go now.
        if let Some(pid) = pid.filter(|p| Path::new(&format!("/proc/{p}")).exists()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("LIFECYCLE_TEST_PG_BIN") {
        return dir.into();
    }
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| d.join("initdb").exists());
    let dir = from_config.unwrap_or_else(|| "/usr/lib/postgresql/15/bin".into());
    assert!(
        dir.join("initdb").exists() && dir.join("pg_ctl").exists(),
        "PostgreSQL's initdb and pg_ctl are needed in {} (or set LIFECYCLE_TEST_PG_BIN)",
        dir.display()
    );
    dir
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn postgres_uid() -> u32 {
    let out = Command::new("id").args(["-u", "postgres"]).output().expect("running id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("running as root, a `postgres` user is needed to run PostgreSQL")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}
