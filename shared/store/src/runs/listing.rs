//! Reading runs for operators: filters, counts.

use super::*;

/// Filters for listing runs (ctl, admin API, console).
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub states: Vec<RunState>,
    pub vendor: Option<VendorKind>,
    pub workflow: Option<Workflow>,
    /// Matches the person's e-mail (case-insensitive) or the event's employee id.
    pub employee: Option<String>,
    pub event_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// None: all; Some(false): only runs not discarded; Some(true): only discarded ones.
    pub discarded: Option<bool>,
    pub limit: Option<u64>,
}

pub async fn list(db: &impl ConnectionTrait, f: &RunFilter) -> Result<Vec<Run>> {
    let mut q = run::Entity::find();
    if !f.states.is_empty() {
        q = q.filter(run::Column::State.is_in(f.states.clone()));
    }
    if let Some(v) = f.vendor {
        q = q.filter(run::Column::Vendor.eq(v));
    }
    if let Some(w) = f.workflow {
        q = q.filter(run::Column::Workflow.eq(w));
    }
    if let Some(e) = &f.employee {
        let needle = e.to_lowercase();
        // Runs keep the person's e-mail; the employee id is in the input JSON,
        // matched literally: `%` and `_` in an id are not wildcards.
        let id = like_literal(&format!("\"id\":{}", serde_json::Value::String(e.clone())));
        q = q.filter(
            Condition::any()
                .add(run::Column::PersonKey.eq(needle))
                .add(run::Column::Input.like(LikeExpr::new(format!("%{id}%")).escape(LIKE_ESCAPE))),
        );
    }
    if let Some(id) = &f.event_id {
        q = q.filter(run::Column::EventId.eq(id.as_str()));
    }
    if let Some(t) = f.since {
        q = q.filter(run::Column::CreatedAt.gte(t));
    }
    if let Some(t) = f.until {
        q = q.filter(run::Column::CreatedAt.lt(t));
    }
    match f.discarded {
        Some(true) => q = q.filter(run::Column::DiscardedAt.is_not_null()),
        Some(false) => q = q.filter(run::Column::DiscardedAt.is_null()),
        None => {}
    }
    Ok(q.order_by_desc(run::Column::Seq).limit(f.limit).all(db).await?)
}

/// The escape character of [`like_literal`]'s patterns. Not the backslash,
/// which JSON strings use for their own escapes (and which PostgreSQL's LIKE
/// takes as its default escape, SQLite's as an ordinary character).
const LIKE_ESCAPE: char = '!';

/// `text` as a LIKE pattern that matches exactly it, with `ESCAPE '!'`.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// How many runs are not finished yet (cheap: no rows are loaded).
pub async fn count_unfinished(db: &impl ConnectionTrait) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(run::Entity::find().filter(unfinished()).count(db).await?)
}

/// (state, vendor) -> count, for dashboards and metrics.
pub async fn counts(db: &impl ConnectionTrait) -> Result<Vec<(RunState, VendorKind, i64)>> {
    let rows: Vec<(RunState, VendorKind, i64)> = run::Entity::find()
        .select_only()
        .column(run::Column::State)
        .column(run::Column::Vendor)
        .column_as(run::Column::Seq.count(), "n")
        .group_by(run::Column::State)
        .group_by(run::Column::Vendor)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_literals_escape_the_wildcards_and_the_escape() {
        assert_eq!(like_literal(r#""id":"E_1%!""#), r#""id":"E!_1!%!!""#);
        assert_eq!(like_literal("plain"), "plain");
    }
}
