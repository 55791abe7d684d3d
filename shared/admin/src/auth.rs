//! HTTP Basic authentication of every admin request, the throttle on wrong
//! passwords, and the CSRF tokens of the console's forms.
//!
//! Wrong credentials are counted per client address
//! ([`lifecycle_listener::AuthThrottle`]): past a few, that address's next
//! attempts wait, longer after each failure, or get 429 with `Retry-After`,
//! and a warning names the address.
//!
//! Browsers resend Basic credentials on any request to the origin, including
//! one a hostile page makes them send, so credentials alone do not prove the
//! operator meant a POST. Each form carries a token: a timestamp and an
//! HMAC-SHA256 over it, the username, the action and the run, keyed by a key
//! derived (HMAC) from `admin.csrf_secret`, or from random bytes drawn at
//! start when that is not set. A hostile page cannot read our pages to learn
//! one; a token is good for one action on one run, for an hour; nothing
//! about the password can be learnt from a token. `SameSite` cookies are not
//! involved (there are none).

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use lifecycle_config::Secret;
use sha2::Sha256;
use std::sync::Arc;

type HmacSha256 = Hmac<Sha256>;

/// How long a rendered form stays valid.
const TOKEN_TTL_SECS: i64 = 3600;

/// Rejects requests without the admin credentials: 401 with a Basic
/// challenge, or 429 with `Retry-After` for a wrong one from an address whose
/// gate is closed (too many wrong ones lately). The credential is checked
/// first, so a right one is never delayed or refused, whoever sent wrong ones
/// from the same address; only wrong ones are counted.
pub async fn require_basic(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(header) = req.headers().get(header::AUTHORIZATION) else {
        // Nothing presented, nothing guessed: the browser's first request gets its challenge.
        return unauthorized();
    };
    let presented = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let client = state.throttle.client_of(&req);
    let ok = presented.as_deref().and_then(|p| p.split_once(':')).is_some_and(|(user, pass)| {
        // Both compared, always: which one was wrong is not revealed by timing.
        let user_ok = Secret::new(state.username.to_string()).matches(user.as_bytes());
        let pass_ok = state.password.matches(pass.as_bytes());
        user_ok & pass_ok
    });
    if !ok {
        return match state.throttle.wrong(client) {
            Ok(()) => unauthorized(),
            Err(refused) => refused.into_response(),
        };
    }
    next.run(req).await
}

fn unauthorized() -> Response {
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
    res
}

/// What a console form does; a token is issued for one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormAction {
    Replay,
    Discard,
    Cancel,
    /// Re-check one `needs_manual_action` run.
    Recheck,
    /// Re-check every run a filter selects (the token names the filter).
    RecheckAll,
    /// Start reconcile passes (the token names the vendor, or `all`).
    Reconcile,
    /// Fix findings (the token names the selection previewed).
    Fix,
    /// Plan an event: reads at the vendors, spent from their budgets.
    Plan,
    /// A bulk action (the token names the action and exactly the runs previewed).
    Bulk,
    /// Edit a dead run's input (the token names the run).
    Edit,
    /// Approve a run awaiting approval (the token names the run).
    Approve,
    /// Reject a run awaiting approval (the token names the run).
    Reject,
    /// Retry an HR delivery that needs a person (the token names the delivery).
    HrRetry,
}

impl FormAction {
    fn as_str(self) -> &'static str {
        match self {
            FormAction::Replay => "replay",
            FormAction::Discard => "discard",
            FormAction::Cancel => "cancel",
            FormAction::Recheck => "recheck",
            FormAction::RecheckAll => "recheck-all",
            FormAction::Reconcile => "reconcile",
            FormAction::Fix => "fix",
            FormAction::Plan => "plan",
            FormAction::Bulk => "bulk",
            FormAction::Edit => "edit",
            FormAction::Approve => "approve",
            FormAction::Reject => "reject",
            FormAction::HrRetry => "hr-retry",
        }
    }
}

/// Issues and checks the console's CSRF tokens.
#[derive(Clone)]
pub struct Csrf {
    key: Arc<[u8; 32]>,
}

impl Csrf {
    /// Keyed from `secret` (`admin.csrf_secret`): tokens survive restarts and
    /// are accepted by every producer configured with the same secret.
    pub fn from_secret(secret: &Secret) -> Self {
        // HMAC as the key-derivation function (HKDF's extract step), with a
        // label, so the key is used for nothing but these tokens.
        let mut kdf = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
        kdf.update(b"lifecycle-admin-csrf-v1");
        Csrf { key: Arc::new(kdf.finalize().into_bytes().into()) }
    }

    /// Keyed from random bytes drawn now: tokens die with this process.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Csrf { key: Arc::new(key) }
    }

    fn mac(&self, username: &str, action: FormAction, run_id: &str, issued: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key[..]).expect("HMAC takes any key length");
        // Length-prefixed fields: no two different tuples give the same input.
        for field in [username, action.as_str(), run_id, &issued.to_string()] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// A token for `username` to do `action` on run `run_id`.
    pub fn issue(&self, username: &str, action: FormAction, run_id: &str) -> String {
        self.issue_at(username, action, run_id, chrono::Utc::now().timestamp())
    }

    fn issue_at(&self, username: &str, action: FormAction, run_id: &str, issued: i64) -> String {
        format!("{issued}.{}", hex::encode(self.mac(username, action, run_id, issued).finalize().into_bytes()))
    }

    /// True if `token` was issued by this key for exactly this user, action and run, within the hour.
    pub fn verify(&self, username: &str, action: FormAction, run_id: &str, token: &str) -> bool {
        let Some((issued, sig)) = token.split_once('.') else { return false };
        let (Ok(issued), Ok(sig)) = (issued.parse::<i64>(), hex::decode(sig)) else { return false };
        let age = chrono::Utc::now().timestamp() - issued;
        if !(-300..=TOKEN_TTL_SECS).contains(&age) {
            return false;
        }
        self.mac(username, action, run_id, issued).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_one_user_one_action_one_run_one_key_and_an_hour() {
        let csrf = Csrf::random();
        let t = csrf.issue("admin", FormAction::Replay, "run-1");
        assert!(csrf.verify("admin", FormAction::Replay, "run-1", &t));
        assert!(!csrf.verify("other", FormAction::Replay, "run-1", &t));
        assert!(!csrf.verify("admin", FormAction::Discard, "run-1", &t), "another action");
        assert!(!csrf.verify("admin", FormAction::Replay, "run-2", &t), "another run");
        assert!(!Csrf::random().verify("admin", FormAction::Replay, "run-1", &t), "another process's key");
        let old =
            csrf.issue_at("admin", FormAction::Replay, "run-1", chrono::Utc::now().timestamp() - TOKEN_TTL_SECS - 10);
        assert!(!csrf.verify("admin", FormAction::Replay, "run-1", &old));
        let mut tampered = t.clone();
        tampered.push('0');
        assert!(!csrf.verify("admin", FormAction::Replay, "run-1", &tampered));
        assert!(!csrf.verify("admin", FormAction::Replay, "run-1", ""));
        assert!(!csrf.verify("admin", FormAction::Replay, "run-1", "123.zz"));
        // Fields cannot be shifted into one another.
        let t = csrf.issue("ad", FormAction::Replay, "minrun");
        assert!(!csrf.verify("admin", FormAction::Replay, "run", &t));
    }

    #[test]
    fn a_configured_secret_keys_every_process_alike_and_is_not_the_password() {
        let secret = Secret::new("a-random-deployment-secret-0123456789");
        let (a, b) = (Csrf::from_secret(&secret), Csrf::from_secret(&secret));
        let t = a.issue("admin", FormAction::Discard, "run-9");
        assert!(b.verify("admin", FormAction::Discard, "run-9", &t), "another producer with the same secret");
        let other = Csrf::from_secret(&Secret::new("another-random-deployment-secret-999"));
        assert!(!other.verify("admin", FormAction::Discard, "run-9", &t));
    }
}
