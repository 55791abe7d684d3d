//! HTTP Basic authentication of every admin request, and the CSRF tokens of
//! the console's forms.
//!
//! Browsers resend Basic credentials on any request to the origin, including
//! one a hostile page makes them send, so credentials alone do not prove the
//! operator meant a POST. Each form carries a token: a timestamp and an
//! HMAC-SHA256 over it and the username, keyed by a hash of the admin
//! password. A hostile page cannot read our pages to learn one; changing the
//! password invalidates them all; several producers with the same password
//! accept each other's tokens. `SameSite` cookies are not involved (there are none).

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use lifecycle_config::Secret;
use sha2::{Digest, Sha256};
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// How long a rendered form stays valid.
const TOKEN_TTL_SECS: i64 = 8 * 3600;

/// Rejects requests without the admin credentials (401 with a Basic challenge).
pub async fn require_basic(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = presented.as_deref().and_then(|p| p.split_once(':')).is_some_and(|(user, pass)| {
        // Both compared, always: which one was wrong is not revealed by timing.
        let user_ok = Secret::new(state.username.to_string()).matches(user.as_bytes());
        let pass_ok = state.password.matches(pass.as_bytes());
        user_ok & pass_ok
    });
    if !ok {
        let mut res = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs the admin credentials (HTTP Basic)",
        )
        .into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"lifecycle admin\", charset=\"UTF-8\""),
        );
        return res;
    }
    next.run(req).await
}

/// Issues and checks the console's CSRF tokens.
#[derive(Clone)]
pub struct Csrf {
    key: Arc<[u8; 32]>,
}

impl Csrf {
    pub fn new(password: &Secret) -> Self {
        let mut h = Sha256::new();
        h.update(b"lifecycle-admin-csrf\0");
        h.update(password.expose().as_bytes());
        Csrf { key: Arc::new(h.finalize().into()) }
    }

    fn mac(&self, username: &str, issued: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key[..]).expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        mac.update(b"\n");
        mac.update(issued.to_string().as_bytes());
        mac
    }

    pub fn issue(&self, username: &str) -> String {
        self.issue_at(username, chrono::Utc::now().timestamp())
    }

    fn issue_at(&self, username: &str, issued: i64) -> String {
        format!("{issued}.{}", hex::encode(self.mac(username, issued).finalize().into_bytes()))
    }

    /// True if `token` was issued for `username` by a holder of the same password, recently.
    pub fn verify(&self, username: &str, token: &str) -> bool {
        let Some((issued, sig)) = token.split_once('.') else { return false };
        let (Ok(issued), Ok(sig)) = (issued.parse::<i64>(), hex::decode(sig)) else { return false };
        let age = chrono::Utc::now().timestamp() - issued;
        if !(-300..=TOKEN_TTL_SECS).contains(&age) {
            return false;
        }
        self.mac(username, issued).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_only_for_its_user_its_password_and_while_fresh() {
        let csrf = Csrf::new(&Secret::new("pw"));
        let t = csrf.issue("admin");
        assert!(csrf.verify("admin", &t));
        assert!(!csrf.verify("other", &t));
        assert!(!Csrf::new(&Secret::new("pw2")).verify("admin", &t));
        let old = csrf.issue_at("admin", chrono::Utc::now().timestamp() - TOKEN_TTL_SECS - 10);
        assert!(!csrf.verify("admin", &old));
        let mut tampered = t.clone();
        tampered.push('0');
        assert!(!csrf.verify("admin", &tampered));
        assert!(!csrf.verify("admin", ""));
        assert!(!csrf.verify("admin", "123.zz"));
    }
}
