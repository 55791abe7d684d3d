//! Reconcile: compare each vendor's accounts with what lifecycle knows of
//! each person (their latest event and how its run ended), keep the
//! differences as findings, and, when asked, turn them into runs.
//!
//! The kinds of finding:
//! - **orphaned**: the person left (their latest event at the vendor, or
//!   anywhere, is a leaver) and the account still gives access;
//! - **missing**: a joiner or mover succeeded and the account is gone or
//!   deactivated now;
//! - **drifted**: the account's roles, groups or products differ from what
//!   the latest event asks for;
//! - **unmanaged**: no event ever named the account (service accounts, the
//!   admin); listed apart, and silenced by `[reconcile] allowlist`.
//!
//! A person whose latest run is still at work (queued, running, retrying) is
//! not judged: the run will change the account. Nor is one whose latest
//! joiner or mover did not succeed: the run itself says what is wrong.
//!
//! The parts: `known` is what lifecycle knows of the people at a vendor
//! ([`Known`]); `classify` judges the accounts a pass read against it
//! ([`classify`], pure); `pass` reads a vendor and records the findings
//! ([`reconcile`]); `fix` turns findings into events ([`fix`]).

mod classify;
mod fix;
mod known;
mod pass;
#[cfg(test)]
mod test_fixtures;

pub use classify::classify;
pub use fix::{fix, Fix, FixSummary, PersonEvent, Skipped};
pub use known::Known;
pub use lifecycle_domain::FindingKind;
pub use pass::{reconcile, report_of, serve_request, PassReport, REQUEST_STALE_AFTER};

use crate::OpsError;
use chrono::{DateTime, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_store::reconcile::{self as store, FindingFilter};
use lifecycle_store::Db;
use serde::Serialize;

/// `events.source` of the events a fix makes.
pub const SOURCE: &str = "reconcile";
pub const ACTION_FIX: &str = "reconcile.fix";

/// A finding as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub id: String,
    pub vendor: VendorKind,
    pub kind: FindingKind,
    pub account: String,
    pub vendor_account_id: Option<String>,
    pub person: Option<String>,
    pub detail: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
}

impl From<store::Finding> for FindingView {
    fn from(f: store::Finding) -> Self {
        Self {
            id: f.id,
            vendor: f.vendor,
            kind: f.kind,
            account: f.account_key,
            vendor_account_id: f.vendor_account_id,
            person: f.person_key,
            detail: f.detail,
            first_seen_at: f.first_seen_at,
            last_seen_at: f.last_seen_at,
            resolved_at: f.resolved_at,
            fix_event_id: f.fix_event_id,
            fixed_by: f.fixed_by,
        }
    }
}

/// Open findings (with `include_resolved`, also the ones passes no longer see).
pub async fn findings(db: &Db, filter: &FindingFilter) -> Result<Vec<FindingView>, OpsError> {
    Ok(store::findings(db, filter).await?.into_iter().map(FindingView::from).collect())
}
