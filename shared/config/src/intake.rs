//! `producer.intake_tokens`: the HR intake's bearer tokens, each with the
//! label audit rows name it by and the scopes it has beyond sending events.
//!
//! ```toml
//! [producer]
//! intake_tokens = [
//!     "a-long-random-token-for-hr",                          # label "token-1", no plans
//!     { token = { file = "/run/secrets/hr" }, label = "workday" },
//!     { token = "another-long-random-token", label = "it-desk", plans = true },
//! ]
//! ```
//!
//! Every intake token may send events (`POST /v1/events`), read and cancel
//! the events sent through the intake (`GET /v1/events/{id}`,
//! `POST /v1/events/{id}/cancel`). `plans = true` (default off) also lets it
//! ask for plans (`POST /v1/plans`), which read the vendors' directories.

use crate::Secret;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// One configured intake token.
#[derive(Debug, Clone)]
pub struct IntakeToken {
    pub token: Secret,
    /// Names the token in audit rows and run outcomes (never the token itself):
    /// as configured, else `token-N` (its place in the list, from 1).
    pub label: String,
    /// May call `POST /v1/plans`.
    pub plans: bool,
}

impl IntakeToken {
    /// A token without scopes, labelled by its place in the list (from 1).
    pub fn plain(token: Secret, position: usize) -> Self {
        IntakeToken { token, label: default_label(position), plans: false }
    }
}

fn default_label(position: usize) -> String {
    format!("token-{position}")
}

/// The list: a sequence of tokens (strings, `{ file = ".." }`, or tables
/// `{ token = .., label = "..", plans = true }`), a comma-separated string,
/// or `{ file = "PATH" }` holding one token per line.
pub(crate) fn intake_tokens<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IntakeToken>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Labelled {
        token: Secret,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        plans: bool,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Plain(Secret),
        Labelled(Labelled),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Entry>),
        Text(String),
        File { file: String },
    }
    let split = |s: &str, sep: char| -> Vec<IntakeToken> {
        s.split(sep)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
            .map(|(i, t)| IntakeToken::plain(Secret::new(t), i + 1))
            .collect()
    };
    let raw = Raw::deserialize(deserializer).map_err(|_| {
        de::Error::custom(
            "producer.intake_tokens: expected a list of tokens (each a string, { file = \"..\" }, or \
             { token = .., label = \"..\", plans = true }), a comma-separated string, or { file = \"..\" }",
        )
    })?;
    let tokens = match raw {
        Raw::List(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, e)| match e {
                Entry::Plain(token) => IntakeToken::plain(token, i + 1),
                Entry::Labelled(l) => IntakeToken {
                    token: l.token,
                    label: l.label.map(|s| s.trim().to_string()).unwrap_or_else(|| default_label(i + 1)),
                    plans: l.plans,
                },
            })
            .collect(),
        Raw::Text(s) => split(&s, ','),
        Raw::File { file } => {
            let content = std::fs::read_to_string(&file)
                .map_err(|e| de::Error::custom(format!("cannot read secret file {file}: {e}")))?;
            split(&content, '\n')
        }
    };
    check_labels(&tokens).map_err(de::Error::custom)?;
    Ok(tokens)
}

/// Labels are shown in audit rows: printable, at most 64 characters, distinct.
fn check_labels(tokens: &[IntakeToken]) -> Result<(), String> {
    for (i, t) in tokens.iter().enumerate() {
        let l = &t.label;
        if l.is_empty() || l.chars().count() > 64 || l.chars().any(char::is_control) {
            return Err(format!("producer.intake_tokens (token #{}): a label is 1 to 64 printable characters", i + 1));
        }
        if tokens[..i].iter().any(|o| &o.label == l) {
            return Err(format!("producer.intake_tokens: the label {l:?} is used twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "intake_tokens")]
        v: Vec<IntakeToken>,
    }

    fn parse(v: serde_json::Value) -> Result<Vec<IntakeToken>, String> {
        serde_json::from_value::<T>(serde_json::json!({ "v": v })).map(|t| t.v).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_tokens_have_no_scope_and_a_label_by_position() {
        for v in [serde_json::json!(["a", "b"]), serde_json::json!("a, b")] {
            let t = parse(v).unwrap();
            assert_eq!(t.iter().map(|t| t.token.expose()).collect::<Vec<_>>(), ["a", "b"]);
            assert_eq!(t.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), ["token-1", "token-2"]);
            assert!(t.iter().all(|t| !t.plans));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "x\ny\n").unwrap();
        let t = parse(serde_json::json!({"file": dir.path().join("t")})).unwrap();
        assert_eq!((t.len(), t[1].label.as_str()), (2, "token-2"));
    }

    #[test]
    fn tables_carry_a_label_and_the_plans_scope() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hr"), "from-file\n").unwrap();
        let t = parse(serde_json::json!([
            "plain",
            {"file": dir.path().join("hr")},
            {"token": {"file": dir.path().join("hr")}, "label": "workday"},
            {"token": "planner", "label": " it-desk ", "plans": true},
            {"token": "nolabel"},
        ]))
        .unwrap();
        assert_eq!(t[1].token.expose(), "from-file");
        assert_eq!((t[2].token.expose(), t[2].label.as_str(), t[2].plans), ("from-file", "workday", false));
        assert_eq!((t[3].token.expose(), t[3].label.as_str(), t[3].plans), ("planner", "it-desk", true));
        assert_eq!(t[4].label, "token-5");
    }

    #[test]
    fn bad_entries_and_labels_are_refused() {
        assert!(parse(serde_json::json!([{"token": "a", "scope": "all"}])).is_err());
        let e = parse(serde_json::json!([{"token": "a", "label": "x"}, {"token": "b", "label": "x"}])).unwrap_err();
        assert!(e.contains("used twice"), "{e}");
        let e = parse(serde_json::json!([{"token": "a", "label": "bad\nlabel"}])).unwrap_err();
        assert!(e.contains("printable"), "{e}");
        assert!(!e.contains("\"a\""), "never the token: {e}");
    }

    // figment's test jail returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn tables_come_from_one_environment_variable_too() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "LIFECYCLE_PRODUCER__INTAKE_TOKENS",
                r#"[{token="planner-token-0123456", label="it desk", plans=true}, "plain-token-0123456"]"#,
            );
            let figment = figment::Figment::new().merge(figment::providers::Env::prefixed("LIFECYCLE_").split("__"));
            let s = crate::Settings::from_figment(figment).map_err(|e| e.to_string())?;
            let t = &s.producer.intake_tokens;
            assert_eq!(
                (t[0].token.expose(), t[0].label.as_str(), t[0].plans),
                ("planner-token-0123456", "it desk", true)
            );
            assert_eq!((t[1].label.as_str(), t[1].plans), ("token-2", false));
            Ok(())
        });
    }
}
