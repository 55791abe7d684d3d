//! A real browser for the console tests: Debian's Chromium, headless, driven
//! over WebDriver (`chromedriver` + fantoccini). `scripts/test` installs both
//! when missing; a test that cannot find them fails and says so.

use crate::process::bin_dir;
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The flags this machine's closed network needs: nothing may phone home.
pub const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn require(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed, and the console tests need a real browser: \
             `apt-get install -y chromium chromium-driver` (scripts/test does it when missing)"
        )
    })
}

/// Where screenshots are kept: `target/debug/e2e-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = bin_dir().join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("creating the artifacts dir");
    dir
}

/// A headless Chromium session; the driver and the browser profile go away on drop.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(log_dir: &Path) -> Browser {
        let chromium = require("chromium");
        let chromedriver = require("chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(log_dir.join("chromedriver.log")).expect("creating the driver log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().expect("a fresh browser profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium.display().to_string(), "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = crate::eventually(Duration::from_secs(30), "chromedriver to start a Chromium session", || {
            let caps = caps.clone();
            let url = url.clone();
            async move {
                let mut builder = fantoccini::ClientBuilder::new(HttpConnector::new());
                builder.capabilities(caps);
                match builder.connect(&url).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("waiting for chromedriver: {e}");
                        None
                    }
                }
            }
        })
        .await;
        Browser { client, driver, _profile: profile }
    }

    /// Saves a PNG of the page under `target/debug/e2e-artifacts/NAME.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("saving the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
