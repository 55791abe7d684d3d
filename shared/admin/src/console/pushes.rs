//! The pushes page (issue 29): each big SCIM group write's fan-out to its
//! members' events, with its progress, pending ones first.

use super::{when, when_opt, Page};
use crate::AdminState;
use askama::Template;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use lifecycle_ops::push::{self, Push};
use lifecycle_ops::OpsError;

pub fn routes() -> Router<AdminState> {
    Router::new().route("/pushes", get(pushes))
}

struct Row {
    id: String,
    group: String,
    change: String,
    state: String,
    members: i32,
    members_done: i32,
    percent: i64,
    events: i32,
    created: String,
    started: String,
    finished: String,
    last_error: String,
}

impl From<Push> for Row {
    fn from(p: Push) -> Self {
        let percent = if p.members > 0 { i64::from(p.members_done) * 100 / i64::from(p.members) } else { 100 };
        Row {
            id: p.id,
            group: p.group_name,
            change: p.change,
            state: p.state,
            members: p.members,
            members_done: p.members_done,
            percent,
            events: p.events,
            created: when(p.created_at),
            started: when_opt(p.started_at),
            finished: when_opt(p.finished_at),
            last_error: p.last_error.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "pushes.html")]
struct PushesPage {
    pending: Vec<Row>,
    recent: Vec<Row>,
}

async fn pushes(State(s): State<AdminState>) -> Page {
    let pending = push::list(&s.db, true, 200).await.map_err(OpsError::from)?;
    let recent = push::list(&s.db, false, 50).await.map_err(OpsError::from)?;
    let page = PushesPage {
        pending: pending.into_iter().map(Row::from).collect(),
        recent: recent.into_iter().filter(push::is_done).map(Row::from).collect(),
    };
    Ok(s.render(&page))
}
