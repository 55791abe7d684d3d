//! GitHub's part of an event.

use super::{AppRequest, Fields, VendorApp};
use crate::event_type::EventType;
use crate::vendor::VendorKind;
use serde::{Deserialize, Serialize};

/// GitHub organisations: the person's GitHub login, their organisation role and their teams (by slug).
///
/// The login is who they are at GitHub; the e-mail address is used only where GitHub's API takes one
/// (an invitation by e-mail, for a joiner whose login is not known yet). Both the login and the team
/// slugs go into request paths, so both are held to GitHub's own character rules here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubApp {
    /// The GitHub login (`octocat`). Required for a mover; a joiner without one is invited by e-mail,
    /// a leaver without one only has an e-mail invitation cancelled.
    pub login: Option<String>,
    /// The organisation role: `member`, `admin` or `billing_manager`, as GitHub names them. A joiner
    /// without one joins as `member`; a mover without one keeps theirs.
    pub role: Option<String>,
    /// Team slugs. `None` (absent): teams are left as they are; `Some([])`: out of every team
    /// lifecycle manages.
    pub teams: Option<Vec<String>>,
    /// A leaver who is an outside collaborator on the organisation's repositories (not a member):
    /// remove that access too. Without it, the access is reported for a person to decide.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_outside_collaborator: bool,
}

/// GitHub's organisation roles.
pub const GITHUB_ROLES: [&str; 3] = ["member", "admin", "billing_manager"];

impl GithubApp {
    pub(super) fn parse(ty: EventType, f: &mut Fields) -> Self {
        f.only(&["login", "role", "teams", "remove_outside_collaborator"]);
        let login = f.name("login");
        if let Some(l) = &login {
            if let Some(problem) = login_problem(l) {
                f.problem("login", problem);
            }
        }
        if ty == EventType::Mover && login.is_none() {
            f.problem("login", "is required for a mover (the person's GitHub login)");
        }
        let role = f.name("role");
        if let Some(r) = &role {
            if !GITHUB_ROLES.contains(&r.as_str()) {
                f.problem("role", "must be one of member, admin, billing_manager");
            }
        }
        let teams = f.names("teams");
        for (i, t) in teams.iter().flatten().enumerate() {
            if !is_team_slug(t) {
                f.problem(
                    &format!("teams[{i}]"),
                    "must be a team slug (lower-case letters, digits, - and _; e.g. platform-team), not a team name",
                );
            }
        }
        if ty == EventType::Mover && role.is_none() && teams.is_none() && !f.has("teams") && !f.has("role") {
            f.problem("teams", "a mover must state the teams or the role the person should end up with");
        }
        let remove_outside_collaborator = match f.get("remove_outside_collaborator").cloned() {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => {
                if b && ty != EventType::Leaver {
                    f.problem("remove_outside_collaborator", "is only for a leaver");
                }
                b
            }
            Some(_) => {
                f.problem("remove_outside_collaborator", "must be true or false");
                false
            }
        };
        GithubApp { login, role, teams, remove_outside_collaborator }
    }
}

impl VendorApp for GithubApp {
    const VENDOR: VendorKind = VendorKind::Github;
    /// Members are known by their GitHub login; an address only reaches an invitation.
    const BY_LOGIN: bool = true;
    /// The login comes from the SCIM user (`githubLogin`); the groups give the rest.
    const SCIM_REFUSAL: Option<&'static str> = None;

    fn of(app: &AppRequest) -> Option<&Self> {
        match app {
            AppRequest::Github(a) => Some(a),
            _ => None,
        }
    }

    /// What two SCIM groups giving GitHub give together: their teams; the role stays the
    /// first group's (GitHub holds one).
    fn unite(&mut self, more: &Self) {
        match (&mut self.teams, &more.teams) {
            (Some(have), Some(more)) => super::add_missing(have, more),
            (have @ None, Some(more)) => *have = Some(more.clone()),
            (_, None) => {}
        }
    }

    fn login(&self) -> Option<&str> {
        self.login.as_deref()
    }

    fn set_login(&mut self, login: &str) -> bool {
        self.login = Some(login.to_string());
        true
    }
}

/// GitHub's rule for a login: 1 to 39 letters, digits and single hyphens, not starting or
/// ending with a hyphen. It goes into request paths, so nothing else passes.
fn login_problem(login: &str) -> Option<&'static str> {
    let ok = !login.is_empty()
        && login.len() <= 39
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--");
    (!ok).then_some(
        "must be a GitHub login: 1 to 39 letters, digits and single hyphens, not starting or ending with one",
    )
}

/// A team slug as GitHub makes them from team names: lower-case ASCII letters, digits, `-` and `_`.
fn is_team_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use crate::apps::{parsed, AppRequest};
    use crate::event_type::EventType;
    use crate::vendor::VendorKind;
    use serde_json::json;

    fn parse(ty: EventType, github: serde_json::Value) -> Result<AppRequest, String> {
        parsed(VendorKind::Github, ty, &github)
    }

    #[test]
    fn a_joiner_needs_nothing_but_what_it_states_must_be_valid() {
        assert!(parse(EventType::Joiner, json!({})).is_ok(), "no login: invited by e-mail");
        assert!(parse(
            EventType::Joiner,
            json!({"login": "ada-gh", "role": "admin", "teams": ["platform", "sre_team"]})
        )
        .is_ok());
        for (bad, field) in [
            (json!({"login": "ada/../x"}), "login"),
            (json!({"login": "-ada"}), "login"),
            (json!({"login": "a--b"}), "login"),
            (json!({"login": "x".repeat(40)}), "login"),
            (json!({"role": "owner"}), "role"),
            (json!({"teams": ["Platform Team"]}), "teams[0]"),
            (json!({"teams": "platform"}), "teams"),
            (json!({"remove_outside_collaborator": true}), "remove_outside_collaborator"),
            (json!({"org": "x"}), "org"),
        ] {
            let err = parse(EventType::Joiner, bad.clone()).unwrap_err();
            assert!(err.contains(&format!("apps.github.{field}")), "{bad}: {err}");
        }
    }

    #[test]
    fn a_mover_needs_a_login_and_something_to_converge() {
        assert!(parse(EventType::Mover, json!({"login": "ada-gh", "teams": []})).is_ok());
        assert!(parse(EventType::Mover, json!({"login": "ada-gh", "role": "member"})).is_ok());
        assert!(parse(EventType::Mover, json!({"teams": ["a"]})).unwrap_err().contains("apps.github.login"));
        assert!(parse(EventType::Mover, json!({"login": "ada-gh"})).unwrap_err().contains("apps.github.teams"));
    }

    #[test]
    fn a_leaver_takes_a_login_and_the_outside_collaborator_choice_only() {
        let app = parse(EventType::Leaver, json!({"login": "ada-gh", "remove_outside_collaborator": true})).unwrap();
        assert!(matches!(app, AppRequest::Github(g) if g.remove_outside_collaborator));
        assert!(parse(EventType::Leaver, json!({})).is_ok(), "no login: an e-mail invitation is cancelled");
    }
}
