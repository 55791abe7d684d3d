//! Reconcile: passes, findings, fixes.

use super::*;
use lifecycle_ops::query::findings::{fix_runs, FindingFilter};
use lifecycle_ops::query::passes::{self, PassView};
use lifecycle_ops::query::runs::Run;
use lifecycle_ops::reconcile::FindingView;
use std::collections::HashMap;

/// One vendor's line: its last pass and the button to start one.
struct VendorPassRow {
    vendor: VendorKind,
    configured: bool,
    last: Option<PassRow>,
    /// A pass asked for that no worker has started yet: "waiting for a worker".
    waiting: bool,
    csrf: String,
}

struct PassRow {
    started: String,
    running: bool,
    requested_by: String,
    accounts: String,
    took: String,
    findings: String,
    error: String,
}

impl From<&PassView> for PassRow {
    fn from(p: &PassView) -> Self {
        let n = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
        PassRow {
            started: when(p.started_at),
            running: p.running,
            requested_by: p.requested_by.clone(),
            accounts: n(p.accounts),
            took: p.seconds.map(|s| format!("{s:.1} s")).unwrap_or_default(),
            findings: n(p.findings),
            error: p.error.clone().unwrap_or_default(),
        }
    }
}

struct FindingRow {
    id: String,
    account: String,
    person: String,
    detail: String,
    since: String,
    last_seen: String,
    resolved: String,
    fix_event: String,
    fix_run: String,
    fix_run_state: String,
    fixed_by: String,
    /// Orphaned, missing or drifted, open and not yet fixed.
    fixable: bool,
}

struct FindingGroup {
    vendor: VendorKind,
    kind: String,
    rows: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "reconcile.html")]
struct ReconcilePage {
    vendors: Vec<VendorPassRow>,
    any_running: bool,
    csrf_all: String,
    notice: String,
    vendor_options: Vec<Opt>,
    kind_options: Vec<Opt>,
    vendor: String,
    kind: String,
    include_resolved: bool,
    groups: Vec<FindingGroup>,
    fixable: usize,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FindingQuery {
    vendor: Option<String>,
    kind: Option<String>,
    include_resolved: Option<String>,
    /// A single finding (the fix preview of one row).
    id: Option<String>,
    started: Option<String>,
}

impl FindingQuery {
    fn filter(&self) -> Result<FindingFilter, OpsError> {
        let vendor = self
            .vendor
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| lifecycle_ops::filter::parse_name("vendor", v))
            .transpose()?;
        Ok(FindingFilter {
            vendor,
            kind: crate::api::kind_of(self.kind.as_deref())?,
            include_resolved: matches!(self.include_resolved.as_deref(), Some("true" | "on" | "1" | "yes")),
            limit: Some(5000),
        })
    }
}

fn kind_options(current: &Option<String>) -> Vec<Opt> {
    use lifecycle_ops::reconcile::FindingKind;
    FindingKind::ALL
        .iter()
        .map(|k| Opt { value: k.as_str().to_string(), selected: current.as_deref() == Some(k.as_str()) })
        .collect()
}

/// A finding as a row, with the run its fix made (if any), from `fix_runs`
/// (read for the whole page at once: [`fix_runs`]).
fn finding_row(f: FindingView, fix_runs: &HashMap<String, Run>) -> FindingRow {
    let run = f.fix_event_id.as_ref().and_then(|e| fix_runs.get(e));
    let fixable = f.resolved_at.is_none() && f.fix_event_id.is_none() && f.kind.fix_workflow().is_some();
    FindingRow {
        account: f.account,
        person: f.person.unwrap_or_default(),
        detail: f.detail,
        since: when(f.first_seen_at),
        last_seen: when(f.last_seen_at),
        resolved: when_opt(f.resolved_at),
        fix_event: f.fix_event_id.unwrap_or_default(),
        fix_run: run.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
        fix_run_state: run.map(|r| r.state.to_string()).unwrap_or_default(),
        fixed_by: f.fixed_by.unwrap_or_default(),
        fixable,
        id: f.id,
    }
}

pub(super) async fn reconcile_page(State(s): State<AdminState>, Query(q): Query<FindingQuery>) -> Page {
    let configured = s.vendors.registry.vendors();
    let mut vendors = Vec::new();
    for v in VendorKind::ALL {
        let last = passes::passes(&s.db, Some(v), 1).await?.first().map(PassRow::from);
        let is_configured = configured.contains(&v);
        let waiting = passes::waiting(&s.db, v).await?;
        if is_configured || last.is_some() {
            vendors.push(VendorPassRow {
                vendor: v,
                configured: is_configured,
                last,
                waiting,
                csrf: s.csrf.issue(&s.username, FormAction::Reconcile, v.as_str()),
            });
        }
    }
    let (findings, error) = match q.filter() {
        Ok(f) => (lifecycle_ops::reconcile::findings(&s.db, &f).await?, String::new()),
        // A bad filter is shown above an empty list, with the form to fix it.
        Err(e) => (Vec::new(), e.to_string()),
    };
    let runs = fix_runs(&s.db, &findings).await?;
    let mut groups: Vec<FindingGroup> = Vec::new();
    for f in findings {
        let (vendor, kind) = (f.vendor, f.kind.to_string());
        let row = finding_row(f, &runs);
        match groups.last_mut() {
            Some(g) if g.vendor == vendor && g.kind == kind => g.rows.push(row),
            _ => groups.push(FindingGroup { vendor, kind, rows: vec![row] }),
        }
    }
    let notice = match q.started.as_deref() {
        Some("1") => "A worker was asked to reconcile; this page refreshes until the pass ends.",
        Some("0") => "A pass over that vendor was already asked for; this page refreshes until it ends.",
        _ => "",
    };
    Ok(s.render(&ReconcilePage {
        any_running: vendors.iter().any(|v| v.waiting || v.last.as_ref().is_some_and(|p| p.running)),
        csrf_all: s.csrf.issue(&s.username, FormAction::Reconcile, "all"),
        notice: notice.into(),
        vendor_options: options(&VendorKind::ALL, &q.vendor),
        kind_options: kind_options(&q.kind),
        vendor: q.vendor.clone().unwrap_or_default(),
        kind: q.kind.clone().unwrap_or_default(),
        include_resolved: matches!(q.include_resolved.as_deref(), Some("true" | "on" | "1" | "yes")),
        fixable: groups.iter().flat_map(|g| &g.rows).filter(|r| r.fixable).count(),
        groups,
        vendors,
        error,
    }))
}

#[derive(Deserialize)]
pub(super) struct ReconcileForm {
    #[serde(default)]
    csrf: String,
    /// A vendor, or `all`.
    #[serde(default)]
    vendor: String,
}

/// Reading is not a change at the vendor, so no confirmation page; the form
/// still carries a token, since a pass spends the vendor's budget.
pub(super) async fn reconcile_start(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<ReconcileForm>,
) -> Result<Redirect, PageError> {
    check_token(&s, &headers, &form.csrf, FormAction::Reconcile, &form.vendor)?;
    let vendor = match form.vendor.as_str() {
        "all" => None,
        v => Some(lifecycle_ops::filter::parse_name::<VendorKind>("vendor", v)?),
    };
    let started = passes::start(&s.db, &s.vendors, vendor, &s.actor()).await?;
    let flag = if started.started.is_empty() { "0" } else { "1" };
    Ok(Redirect::to(&format!("/reconcile?started={flag}")))
}

/// A fix, or a would-be fix, as a row.
struct FixRow {
    finding_id: String,
    vendor: VendorKind,
    kind: String,
    account: String,
    detail: String,
    workflow: Workflow,
    event_id: String,
    run_id: String,
    /// The pass's time, the event's `occurred_at`.
    dated: String,
    /// The person's latest event, what the fix is made from.
    latest_event: String,
}

struct SkipRow {
    account: String,
    reason: String,
    /// The person changed since the pass that saw the finding.
    changed: bool,
}

#[derive(Template)]
#[template(path = "fix.html")]
struct FixPage {
    done: bool,
    vendor: String,
    kind: String,
    /// The ids the preview would fix, comma-separated: what the form sends back.
    ids: String,
    fixes: Vec<FixRow>,
    skipped: Vec<SkipRow>,
    csrf: String,
}

/// What a fix form's token is issued for: the filter and the findings shown.
fn fix_target(vendor: &str, kind: &str, ids: &str) -> String {
    format!("{}:{vendor}|{}:{kind}|{ids}", vendor.len(), kind.len())
}

async fn fix_page(
    s: &AdminState,
    q: &FindingQuery,
    only: Option<Vec<String>>,
    dry_run: bool,
) -> Result<FixPage, PageError> {
    let filter = q.filter()?;
    let details: std::collections::HashMap<String, String> =
        lifecycle_ops::reconcile::findings(&s.db, &filter).await?.into_iter().map(|f| (f.id, f.detail)).collect();
    let summary = lifecycle_ops::reconcile::fix(
        &s.db,
        &s.vendors.schedule,
        &s.vendors.safety,
        &filter,
        only.as_deref(),
        &s.actor(),
        dry_run,
        |_| {},
    )
    .await?;
    let fixes: Vec<FixRow> = summary
        .fixed
        .into_iter()
        .map(|f| FixRow {
            detail: details.get(&f.finding_id).cloned().unwrap_or_default(),
            finding_id: f.finding_id,
            vendor: f.vendor,
            kind: f.kind.to_string(),
            account: f.account,
            workflow: f.workflow,
            event_id: f.event_id.unwrap_or_default(),
            run_id: f.run_id.unwrap_or_default(),
            dated: f.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            latest_event: f.latest_event.map(|e| e.describe()).unwrap_or_else(|| "none".into()),
        })
        .collect();
    let ids = fixes.iter().map(|f| f.finding_id.as_str()).collect::<Vec<_>>().join(",");
    let (vendor, kind) = (q.vendor.clone().unwrap_or_default(), q.kind.clone().unwrap_or_default());
    Ok(FixPage {
        done: !dry_run,
        csrf: if dry_run {
            s.csrf.issue(&s.username, FormAction::Fix, &fix_target(&vendor, &kind, &ids))
        } else {
            String::new()
        },
        vendor,
        kind,
        ids,
        fixes,
        skipped: summary
            .skipped
            .into_iter()
            .map(|k| SkipRow { account: k.account, reason: k.reason, changed: k.person_changed })
            .collect(),
    })
}

/// The dry run: what each selected finding would become. Nothing is written.
pub(super) async fn fix_preview(State(s): State<AdminState>, Query(q): Query<FindingQuery>) -> Page {
    let only = q.id.clone().filter(|i| !i.trim().is_empty()).map(|i| vec![i]);
    Ok(s.render(&fix_page(&s, &q, only, true).await?))
}

#[derive(Deserialize)]
pub(super) struct FixForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    ids: String,
}

/// Fixes exactly the findings the preview showed (the token names them).
/// Answers with what was made rather than a redirect: reloading it repeats
/// nothing, since a fixed finding is skipped ("already fixed by event ...").
pub(super) async fn do_fix(State(s): State<AdminState>, headers: HeaderMap, Form(form): Form<FixForm>) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::Fix, &fix_target(&form.vendor, &form.kind, &form.ids))?;
    let ids: Vec<String> = form.ids.split(',').map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
    if ids.is_empty() {
        return Err(PageError(StatusCode::BAD_REQUEST, "the preview had nothing to fix".into()));
    }
    let q = FindingQuery {
        vendor: Some(form.vendor).filter(|v| !v.is_empty()),
        kind: Some(form.kind).filter(|k| !k.is_empty()),
        ..Default::default()
    };
    Ok(s.render(&fix_page(&s, &q, Some(ids), false).await?))
}
