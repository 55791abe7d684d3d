//! Filters as query parameters (API) and form fields (console): the same
//! names as the ctl's flags. Empty fields count as absent, so a console form
//! submitted with blanks lists everything.

use lifecycle_ops::filter::{parse_name, parse_time};
use lifecycle_ops::query::runs::RunFilter;
use lifecycle_ops::OpsError;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterParams {
    /// One state, or several separated by commas.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    /// E-mail address or HR employee id.
    #[serde(default)]
    pub employee: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    /// RFC 3339 or an age (2h, 3d).
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
    /// `true`/`on`/`1` (a checked checkbox sends `on`).
    #[serde(default)]
    pub include_discarded: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl FilterParams {
    pub fn include_discarded(&self) -> bool {
        matches!(given(&self.include_discarded).as_deref(), Some("true" | "on" | "1" | "yes"))
    }

    pub fn to_filter(&self, default_limit: u64) -> Result<RunFilter, OpsError> {
        let time = |v: &Option<String>, name: &str| {
            given(v).map(|s| parse_time(&s).map_err(|e| OpsError::Invalid(format!("{name}: {e}")))).transpose()
        };
        let limit = match given(&self.limit) {
            Some(l) => l.parse::<u64>().map_err(|_| OpsError::Invalid(format!("limit: '{l}' is not a number")))?,
            None => default_limit,
        };
        let (since, until) = (time(&self.since, "since")?, time(&self.until, "until")?);
        Ok(RunFilter {
            states: given(&self.state)
                .map(|s| {
                    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| parse_name("state", p)).collect()
                })
                .transpose()?
                .unwrap_or_default(),
            vendor: given(&self.vendor).map(|v| parse_name("vendor", &v)).transpose()?,
            workflow: given(&self.workflow).map(|w| parse_name("workflow", &w)).transpose()?,
            employee: given(&self.employee),
            event_id: given(&self.event),
            since,
            until,
            discarded: None,
            limit: Some(limit.clamp(1, 10_000)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::RunState;

    #[test]
    fn blank_fields_are_absent_and_states_split_on_commas() {
        let p = FilterParams {
            state: Some("dead, needs_manual_action".into()),
            vendor: Some("".into()),
            since: Some(" ".into()),
            ..Default::default()
        };
        let f = p.to_filter(50).unwrap();
        assert_eq!(f.states, [RunState::Dead, RunState::NeedsManualAction]);
        assert!(f.vendor.is_none() && f.since.is_none());
        assert_eq!(f.limit, Some(50));
    }

    #[test]
    fn bad_values_are_named() {
        let p = FilterParams { workflow: Some("hire".into()), ..Default::default() };
        assert!(matches!(p.to_filter(10), Err(OpsError::Invalid(m)) if m.contains("workflow")));
        let p = FilterParams { since: Some("last tuesday".into()), ..Default::default() };
        assert!(matches!(p.to_filter(10), Err(OpsError::Invalid(m)) if m.contains("since")));
    }
}
