//! Parsing what operators type into filters, the same way everywhere: the
//! ctl's flags, the API's query parameters and the console's forms.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_store::runs::RunFilter;

/// RFC 3339, or an age meaning "that long ago" (`90m`, `2h`, `7d`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let age =
        humantime::parse_duration(s).map_err(|_| format!("'{s}' is neither an RFC 3339 time nor an age like 2h"))?;
    Ok(Utc::now() - chrono::Duration::from_std(age).map_err(|e| e.to_string())?)
}

/// Rejects states, vendors and workflows that do not exist, so a typo gives an
/// error instead of an empty (and misleading) listing.
pub fn validate(f: &RunFilter) -> Result<(), OpsError> {
    for s in &f.states {
        s.parse::<RunState>().map_err(|e| OpsError::Invalid(format!("state: {e}")))?;
    }
    if let Some(v) = &f.vendor {
        v.parse::<VendorKind>().map_err(|e| OpsError::Invalid(format!("vendor: {e}")))?;
    }
    if let Some(w) = &f.workflow {
        w.parse::<Workflow>().map_err(|e| OpsError::Invalid(format!("workflow: {e}")))?;
    }
    Ok(())
}

/// The dead runs an operator acts on: `dead`, not discarded (unless asked),
/// with the given narrowing filters.
pub fn dead(mut f: RunFilter, include_discarded: bool) -> RunFilter {
    f.states = vec![RunState::Dead.as_str().to_string()];
    f.discarded = if include_discarded { None } else { Some(false) };
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let t = parse_time("2026-11-22T09:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T09:00:00+00:00");
        let ago = parse_time("2h").unwrap();
        let diff = Utc::now() - ago;
        assert!((diff.num_minutes() - 120).abs() <= 1, "{diff}");
        assert!(parse_time("yesterday-ish").is_err());
    }

    #[test]
    fn unknown_names_in_filters_are_errors() {
        let bad = RunFilter { vendor: Some("myspace".into()), ..Default::default() };
        assert!(matches!(validate(&bad), Err(OpsError::Invalid(m)) if m.contains("vendor")));
        let ok = RunFilter { states: vec!["dead".into()], workflow: Some("leaver".into()), ..Default::default() };
        assert!(validate(&ok).is_ok());
    }
}
