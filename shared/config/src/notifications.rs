//! `[notifications]`: outgoing webhooks that tell people when runs need them
//! (a run needs manual action, died, was held by the blast-radius guard, or
//! awaits an approval). Batched: one message per `batch_every` per kind per
//! webhook, listing the runs. The worker sends them (one worker of a fleet per
//! webhook at a time).

use crate::reference::types::{HumanDuration, VendorName};
use crate::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a notification is about: the run state it entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A run needs a person to act at the vendor.
    NeedsManualAction,
    /// A run ended `dead`.
    Dead,
    /// The blast-radius guard held a run.
    Held,
    /// A run awaits an approver.
    AwaitingApproval,
}

impl NotifyKind {
    pub const ALL: [NotifyKind; 4] =
        [NotifyKind::NeedsManualAction, NotifyKind::Dead, NotifyKind::Held, NotifyKind::AwaitingApproval];

    /// The run state (as the `runs.state` column holds it) this kind is about.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotifyKind::NeedsManualAction => "needs_manual_action",
            NotifyKind::Dead => "dead",
            NotifyKind::Held => "held",
            NotifyKind::AwaitingApproval => "awaiting_approval",
        }
    }
}

impl std::fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// The documented JSON schema (docs/contract.md §7).
    #[default]
    Json,
    /// What Slack's incoming webhooks take: `{"text": ..., "blocks": [...]}`.
    Slack,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// At most one message per this long per kind per webhook; a run waits
    /// at most this long before it is told (so that those entering the same
    /// state together arrive in one message).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub batch_every: Duration,
    /// Runs listed one by one in a message (1 to 40); the rest are counted and linked.
    pub list_runs: usize,
    /// Timeout of each delivery.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "HumanDuration")]
    pub timeout: Duration,
    /// One table per receiver (`[[notifications.webhooks]]`).
    pub webhooks: Vec<WebhookSettings>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            batch_every: Duration::from_secs(60),
            list_runs: 20,
            timeout: Duration::from_secs(10),
            webhooks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Names the webhook in logs, metrics and the database's record of what
    /// was sent (never the URL, which is often the credential itself).
    pub name: String,
    /// Where messages are POSTed. A secret: Slack's incoming-webhook URL is its own credential.
    pub url: Secret,
    /// The body sent.
    #[serde(default)]
    pub format: NotifyFormat,
    /// The kinds this webhook is told about (default: all four).
    #[serde(default = "all_kinds")]
    pub kinds: Vec<NotifyKind>,
    /// Only runs at these vendors (default: every vendor). A misspelt one is
    /// refused at load, naming it and the known vendors.
    #[serde(default)]
    #[schemars(with = "Vec<VendorName>")]
    pub vendors: Vec<lifecycle_domain::VendorKind>,
    /// Signs each body: `X-Lifecycle-Signature-256: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The console's address as people reach it (`https://lifecycle.example.com`):
    /// links to each run and to the filtered list. Absent: no links.
    #[serde(default)]
    pub console_url: Option<String>,
    /// `http://` allowed (a receiver on the same machine, tests); else `https://` only.
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn all_kinds() -> Vec<NotifyKind> {
    NotifyKind::ALL.to_vec()
}

impl NotificationSettings {
    /// The rules [`crate::Settings::load`] enforces; errors name the webhook,
    /// never its URL.
    pub fn check(&self) -> Result<(), String> {
        if self.batch_every < Duration::from_millis(100) {
            return Err("notifications.batch_every must be at least 100ms".into());
        }
        if self.timeout.is_zero() {
            return Err("notifications.timeout must be more than 0".into());
        }
        if !(1..=40).contains(&self.list_runs) {
            return Err("notifications.list_runs must be between 1 and 40 (Slack takes at most 50 blocks)".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for w in &self.webhooks {
            let name = &w.name;
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(format!(
                    "notifications.webhooks: name {name:?} must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("notifications.webhooks: two webhooks are named {name:?}"));
            }
            let url = w.url.expose();
            let plain = url.starts_with("http://");
            if !(url.starts_with("https://") || plain && w.allow_plain_http) {
                return Err(format!(
                    "notifications.webhooks.{name}.url must be https:// (http:// only with allow_plain_http = true)"
                ));
            }
            if w.kinds.is_empty() {
                return Err(format!("notifications.webhooks.{name}.kinds is empty: name at least one"));
            }
            if let Some(c) = &w.console_url {
                if !(c.starts_with("https://") || c.starts_with("http://")) {
                    return Err(format!("notifications.webhooks.{name}.console_url must be an http(s):// address"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_json: serde_json::Value) -> NotificationSettings {
        serde_json::from_value(toml_json).unwrap()
    }

    #[test]
    fn defaults_and_rules() {
        let s = parse(serde_json::json!({
            "webhooks": [{"name": "ops", "url": "https://hooks.slack.com/services/T/B/x", "format": "slack"}]
        }));
        assert_eq!(s.batch_every, Duration::from_secs(60));
        assert_eq!(s.webhooks[0].kinds, NotifyKind::ALL.to_vec());
        assert_eq!(s.webhooks[0].format, NotifyFormat::Slack);
        assert!(s.check().is_ok());

        let plain = parse(serde_json::json!({"webhooks": [{"name": "a", "url": "http://127.0.0.1:1/x?token=zzz"}]}));
        let err = plain.check().unwrap_err();
        assert!(err.contains("notifications.webhooks.a.url must be https") && !err.contains("zzz"), "{err}");
        let allowed = parse(
            serde_json::json!({"webhooks": [{"name": "a", "url": "http://127.0.0.1:1/x", "allow_plain_http": true}]}),
        );
        assert!(allowed.check().is_ok());

        let twice = parse(serde_json::json!({"webhooks": [
            {"name": "a", "url": "https://x/1"}, {"name": "a", "url": "https://x/2"}
        ]}));
        assert!(twice.check().unwrap_err().contains("two webhooks"));
        let vendor: Result<NotificationSettings, _> = serde_json::from_value(
            serde_json::json!({"webhooks": [{"name": "a", "url": "https://x", "vendors": ["nope"]}]}),
        );
        let err = vendor.unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("pipedrive"), "names it and the known vendors: {err}");
        let kind: Result<NotificationSettings, _> = serde_json::from_value(
            serde_json::json!({"webhooks": [{"name": "a", "url": "https://x", "kinds": ["late"]}]}),
        );
        assert!(kind.is_err());
    }

    #[test]
    fn read_from_the_toml_file_and_checked_with_the_rest() {
        use figment::providers::{Format, Toml};
        let toml = r#"
            [notifications]
            batch_every = "2m"
            [[notifications.webhooks]]
            name = "ops-slack"
            url = "https://hooks.slack.com/services/T0/B0/secret-part"
            format = "slack"
            kinds = ["needs_manual_action", "held"]
            vendors = ["pipedrive"]
            secret = "hmac-key"
            console_url = "https://lifecycle.example.com"
        "#;
        let s = crate::Settings::from_figment(figment::Figment::from(Toml::string(toml))).unwrap();
        let w = &s.notifications.webhooks[0];
        assert_eq!(s.notifications.batch_every, Duration::from_secs(120));
        assert_eq!(
            (w.format, w.kinds.as_slice()),
            (NotifyFormat::Slack, &[NotifyKind::NeedsManualAction, NotifyKind::Held][..])
        );
        assert_eq!(w.secret.as_ref().unwrap().expose(), "hmac-key");
        assert!(!format!("{w:?}").contains("secret-part") && !format!("{w:?}").contains("hmac-key"));
        let plain = toml.replace("https://hooks", "http://hooks");
        let err = crate::Settings::from_figment(figment::Figment::from(Toml::string(&plain))).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("notifications.webhooks.ops-slack.url must be https"), "{err}");
    }
}
