//! Starting our binaries as child processes and reading the address they bound.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where the built binaries are.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("LIFECYCLE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/<test-exe> -> target/<profile>
    let exe = std::env::current_exe().expect("knowing the test executable");
    exe.parent().and_then(Path::parent).expect("the test executable is in target/<profile>/deps").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (scripts/test does), or set LIFECYCLE_BIN_DIR",
        path.display()
    );
    path
}

/// A running child process; killed when dropped. Its stdout and stderr go to `log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `binary` with `args` and `env`, and waits for the stdout line
    /// that starts with `ready_prefix`; returns the rest of that line.
    pub fn start(
        name: &str,
        binary: &str,
        args: &[&str],
        env: &BTreeMap<String, String>,
        log_dir: &Path,
        ready_prefix: &str,
    ) -> (Proc, String) {
        let log = log_dir.join(format!("{name}.log"));
        let mut cmd = Command::new(bin(binary));
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env("RUST_LOG", std::env::var("LIFECYCLE_TEST_LOG").unwrap_or_else(|_| "info".into()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("opening the process log");
        let err_file = file.try_clone().expect("cloning the log handle");
        std::thread::spawn(move || {
            let mut f = err_file;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                whole_line(&mut f, &line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let prefix = ready_prefix.to_string();
        std::thread::spawn(move || {
            let mut f = file;
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                whole_line(&mut f, &line);
                if let Some(rest) = line.strip_prefix(&prefix) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{name} did not become ready; its log:\n{tail}");
            }
        };
        (Proc { name: name.to_string(), child, log }, ready)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for it to exit (at most `timeout`, then SIGKILL).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends `line` and its newline in one write: stdout's and stderr's threads
/// share the log file, and `writeln!` writes the line and its newline apart,
/// so a line of the other could land between them (seen: "addr=...admin
/// listening on ..." on one line, and the admin URL not found).
fn whole_line(f: &mut std::fs::File, line: &str) {
    let _ = f.write_all(format!("{line}\n").as_bytes());
}
