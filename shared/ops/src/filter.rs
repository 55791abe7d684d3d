//! Parsing what operators type into filters, the same way everywhere: the
//! ctl's flags, the API's query parameters and the console's forms.

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::RunState;
use lifecycle_store::runs::RunFilter;
use std::fmt::Display;
use std::str::FromStr;

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

/// A state, vendor or workflow as typed into the API's parameters or the
/// console's forms (`field` names which): one that does not exist is an
/// error instead of an empty (and misleading) listing. (The ctl's flags are
/// parsed by clap into the same types.)
pub fn parse_name<T>(field: &str, value: &str) -> Result<T, OpsError>
where
    T: FromStr,
    T::Err: Display,
{
    value.parse().map_err(|e| OpsError::Invalid(format!("{field}: {e}")))
}

/// The dead runs an operator acts on: `dead`, not discarded (unless asked),
/// with the given narrowing filters.
pub fn dead(mut f: RunFilter, include_discarded: bool) -> RunFilter {
    f.states = vec![RunState::Dead];
    f.discarded = if include_discarded { None } else { Some(false) };
    f
}

/// The runs a re-check applies to: `needs_manual_action`, with the given
/// narrowing filters (such a run is never discarded: only dead ones are).
pub fn needs_manual_action(mut f: RunFilter) -> RunFilter {
    f.states = vec![RunState::NeedsManualAction];
    f.discarded = None;
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
        use lifecycle_domain::{VendorKind, Workflow};
        let bad = parse_name::<VendorKind>("vendor", "myspace");
        assert!(matches!(bad, Err(OpsError::Invalid(m)) if m.contains("vendor")));
        assert_eq!(parse_name::<RunState>("state", "dead").unwrap(), RunState::Dead);
        assert_eq!(parse_name::<Workflow>("workflow", "leaver").unwrap(), Workflow::Leaver);
    }
}
