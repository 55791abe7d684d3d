//! Acting as an operator in tests: `lifecycle-ctl` as a process against the
//! stack's database and broker, and the admin API with its credentials.

use crate::process::bin;
use crate::stack::{Stack, ADMIN_PASSWORD, ADMIN_USER};
use serde_json::Value;

/// What a `lifecycle-ctl` invocation did.
#[derive(Debug)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOutput {
    /// stdout as JSON (for `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("ctl printed no JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl Stack {
    /// Runs `lifecycle-ctl ARGS` with this stack's configuration, as `ctl:tester`
    /// unless the args name another `--actor`; stdin is not a terminal.
    pub async fn ctl(&self, args: &[&str]) -> CtlOutput {
        self.ctl_with_env(args, &[]).await
    }

    /// `ctl`, with some of the stack's settings overridden (`LIFECYCLE_...`).
    pub async fn ctl_with_env(&self, args: &[&str], overrides: &[(&str, &str)]) -> CtlOutput {
        let mut cmd = tokio::process::Command::new(bin("lifecycle-ctl"));
        cmd.args(args).stdin(std::process::Stdio::null()).env("USER", "tester").env("RUST_LOG", "warn");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        let out = cmd.output().await.expect("running lifecycle-ctl");
        CtlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        assert!(!self.admin_url.is_empty(), "the producer did not start the admin listener:\n{}", self.logs());
        self.http.request(method, format!("{}{path}", self.admin_url)).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
    }

    /// `GET` on the admin API: (status, JSON body).
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self.admin(reqwest::Method::GET, path).send().await.expect("the admin API answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST` a JSON body to the admin API: (status, content type, JSON body).
    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, String, Value) {
        let r = self.admin(reqwest::Method::POST, path).json(body).send().await.expect("the admin API answers");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, ctype, r.json().await.unwrap_or(Value::Null))
    }
}
