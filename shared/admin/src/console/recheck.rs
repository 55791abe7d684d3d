//! Re-check: one run, or every needs_manual_action run a filter selects.

use super::*;
use lifecycle_ops::query::runs::Run;

#[derive(Template)]
#[template(path = "recheck.html")]
struct RecheckPage {
    r: RunRow,
    asked: String,
    refusal: String,
    csrf: String,
}

pub(super) async fn confirm_recheck(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let d = lifecycle_ops::run_detail(&s.db, &id).await?;
    let refusal = match lifecycle_ops::check_recheckable(&s.db, &id).await {
        Ok(_) => String::new(),
        Err(OpsError::Refused(m)) => m,
        Err(e) => return Err(e.into()),
    };
    let page = RecheckPage {
        r: RunRow::from(&d.run),
        asked: d.run.outcome.clone().or_else(|| d.run.last_error.clone()).unwrap_or_default(),
        csrf: s.csrf.issue(&s.username, FormAction::Recheck, &id),
        refusal: refusal.clone(),
    };
    let status = if refusal.is_empty() { StatusCode::OK } else { StatusCode::CONFLICT };
    Ok((status, s.render(&page)).into_response())
}

pub(super) async fn do_recheck(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Redirect, PageError> {
    check_form(&s, &headers, &form, FormAction::Recheck, &id)?;
    let r = lifecycle_ops::recheck(&s.db, &s.publisher, &id, &s.actor(), None).await?;
    let done = if r.published { "rechecked" } else { "rechecked-unpublished" };
    Ok(Redirect::to(&format!("/runs/{}?done={done}", r.run_id)))
}

/// The narrowing filters of a bulk re-check, as typed: carried from the runs
/// list to the confirmation page and its form, and named in its CSRF token
/// so that the form re-checks exactly what the page showed.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Selection {
    #[serde(default)]
    pub(super) vendor: String,
    #[serde(default)]
    pub(super) workflow: String,
    #[serde(default)]
    pub(super) employee: String,
    #[serde(default)]
    pub(super) since: String,
    #[serde(default)]
    pub(super) until: String,
}

impl Selection {
    pub(super) fn of(p: &FilterParams) -> Self {
        let v = |o: &Option<String>| o.as_deref().unwrap_or("").trim().to_string();
        Selection {
            vendor: v(&p.vendor),
            workflow: v(&p.workflow),
            employee: v(&p.employee),
            since: v(&p.since),
            until: v(&p.until),
        }
    }

    fn params(&self) -> FilterParams {
        let v = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        FilterParams {
            vendor: v(&self.vendor),
            workflow: v(&self.workflow),
            employee: v(&self.employee),
            since: v(&self.since),
            until: v(&self.until),
            ..Default::default()
        }
    }

    /// What the CSRF token is issued for: every field, length-prefixed.
    fn target(&self) -> String {
        [&self.vendor, &self.workflow, &self.employee, &self.since, &self.until]
            .iter()
            .map(|f| format!("{}:{f}", f.len()))
            .collect::<Vec<_>>()
            .join("|")
    }

    /// "vendor calendly, workflow joiner" for people; "every" when nothing narrows it.
    fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("vendor", &self.vendor),
            ("workflow", &self.workflow),
            ("employee", &self.employee),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
        if parts.is_empty() {
            "no filter".into()
        } else {
            parts.join(", ")
        }
    }

    async fn runs(&self, s: &AdminState) -> Result<Vec<Run>, OpsError> {
        let f = lifecycle_ops::filter::needs_manual_action(self.params().to_filter(1000)?);
        lifecycle_ops::query::runs::select(&s.db, &f).await
    }
}

/// A run a bulk re-check did not (or would not) take, and why.
struct Refusal {
    run_id: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "recheck_all.html")]
struct RecheckAllPage {
    done: bool,
    sel: Selection,
    described: String,
    matched: usize,
    /// Dry run: the runs that would be re-checked; done: those that were.
    taken: Vec<String>,
    refused: Vec<Refusal>,
    failed: Vec<Refusal>,
    unpublished: usize,
    csrf: String,
}

fn refusals(v: &[lifecycle_ops::NotReplayed]) -> Vec<Refusal> {
    v.iter().map(|n| Refusal { run_id: n.run_id.clone(), reason: n.reason.clone() }).collect()
}

pub(super) async fn confirm_recheck_all(State(s): State<AdminState>, Query(sel): Query<Selection>) -> Page {
    let selected = sel.runs(&s).await?;
    let summary = lifecycle_ops::recheck_all(&s.db, &s.publisher, selected, &s.actor(), None, true, |_| {}).await;
    Ok(s.render(&RecheckAllPage {
        done: false,
        described: sel.describe(),
        matched: summary.selected,
        taken: summary.would_replay.clone(),
        refused: refusals(&summary.refused),
        failed: refusals(&summary.failed),
        unpublished: 0,
        csrf: s.csrf.issue(&s.username, FormAction::RecheckAll, &sel.target()),
        sel,
    }))
}

#[derive(Deserialize)]
pub(super) struct RecheckAllForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    sel: Selection,
}

/// Answers with the summary itself rather than a redirect: reloading it
/// repeats nothing, since the runs it took are no longer needs_manual_action.
pub(super) async fn do_recheck_all(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<RecheckAllForm>,
) -> Page {
    check_token(&s, &headers, &form.csrf, FormAction::RecheckAll, &form.sel.target())?;
    let selected = form.sel.runs(&s).await?;
    let summary = lifecycle_ops::recheck_all(&s.db, &s.publisher, selected, &s.actor(), None, false, |_| {}).await;
    Ok(s.render(&RecheckAllPage {
        done: true,
        described: form.sel.describe(),
        matched: summary.selected,
        taken: summary.replayed.iter().map(|r| r.run_id.clone()).collect(),
        refused: refusals(&summary.refused),
        failed: refusals(&summary.failed),
        unpublished: summary.unpublished(),
        csrf: String::new(),
        sel: form.sel,
    }))
}
