//! The console's bulk actions and edit form in a real browser (headless
//! Chromium): tick dead runs, preview, confirm, watch them replayed; a form
//! whose runs were changed after the preview is refused and does nothing; a
//! Pipedrive joiner dead on a typo'd role is fixed in the edit form and
//! replayed to one account. The router's tests cover the same on SQLite
//! without a browser; this one runs on PostgreSQL only, for CI's time.

use fantoccini::Locator;
use lifecycle_domain::RunState;
use lifecycle_e2e::browser::Browser;
use lifecycle_e2e::stack::{pipedrive_joiner, ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{eventually, Backend, Stack, StackOptions};
use lifecycle_store::runs;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn console_url(stack: &Stack, path: &str) -> String {
    let base = stack.admin_url.replacen("http://", &format!("http://{ADMIN_USER}:{ADMIN_PASSWORD}@"), 1);
    format!("{base}{path}")
}

async fn wait_for(c: &fantoccini::Client, id: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(WAIT).for_element(Locator::Id(id)).await {
        Ok(e) => e,
        Err(e) => panic!("no #{id} on the page ({e}):\n{}", c.source().await.unwrap_or_default()),
    }
}

/// The value of the page's hidden input `name`.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn an_operator_replays_ticked_dead_runs_and_fixes_a_typo_in_the_edit_form(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "console-bulk")).await;
    // Three joiners refused once by Pipedrive (403 is not retried): dead.
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "POST", "path": "/api/v1/users", "kind": "status", "status": 403, "count": 3})).await;
    let mut dead = Vec::new();
    for n in 1..=3 {
        let accepted =
            stack.accept(&pipedrive_joiner(&format!("E-{n}"), &format!("p{n}@example.com"), "Sales Rep")).await;
        let run = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await.remove(0);
        assert_eq!(run.state, RunState::Dead, "{}", stack.logs());
        dead.push(run.id);
    }
    let (a, b, c) = (dead[0].clone(), dead[1].clone(), dead[2].clone());

    let browser = Browser::start(&stack.log_dir).await;
    let cl = &browser.client;
    cl.goto(&console_url(&stack, "/dead")).await.expect("opening the dead runs page");
    for id in [&a, &b] {
        let row = cl.find(Locator::Id(&format!("run-{id}"))).await.expect("the run is listed");
        row.find(Locator::Css("input.pick")).await.expect("a checkbox").click().await.unwrap();
    }
    browser.screenshot(&format!("console-bulk-ticked-{backend:?}").to_lowercase()).await;
    // The action's <select> starts at replay.
    let action = cl.find(Locator::Id("bulk-action")).await.unwrap();
    assert_eq!(action.prop("value").await.unwrap().as_deref(), Some("replay"));
    cl.find(Locator::Id("bulk-selected")).await.unwrap().click().await.unwrap();
    let heading = wait_for(cl, "bulk-heading").await.text().await.unwrap();
    assert_eq!(heading, "replay 2 run(s)?");
    let listed = cl.find(Locator::Id("bulk-runs")).await.unwrap().text().await.unwrap();
    assert!(listed.contains(&a) && listed.contains(&b) && !listed.contains(&c), "{listed}");
    browser.screenshot(&format!("console-bulk-preview-{backend:?}").to_lowercase()).await;

    // The same form with a third run added (or another action) is refused; nothing changes.
    let page = cl.source().await.unwrap();
    let (csrf, ids) = (hidden(&page, "csrf"), hidden(&page, "ids"));
    for (act, ids) in [("replay", format!("{ids},{c}")), ("discard", ids.clone())] {
        let res = stack
            .http
            .post(format!("{}/runs/bulk", stack.admin_url))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .form(&[("csrf", csrf.as_str()), ("action", act), ("ids", ids.as_str()), ("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{act} {ids}");
    }
    for id in [&a, &b, &c] {
        let r = runs::get(&stack.store, id).await.unwrap().unwrap();
        assert_eq!((r.state, r.replays, r.discarded_at), (RunState::Dead, 0, None), "a tampered form does nothing");
    }

    wait_for(cl, "confirm").await.click().await.unwrap();
    let result = wait_for(cl, "bulk-result").await.text().await.unwrap();
    assert!(result.starts_with("replay: done 2, refused 0"), "{result}");
    browser.screenshot(&format!("console-bulk-done-{backend:?}").to_lowercase()).await;
    for id in [&a, &b] {
        let r = eventually(WAIT, "a replayed run to succeed", || async {
            let r = runs::get(&stack.store, id).await.unwrap().unwrap();
            r.state.is_terminal().then_some(r)
        })
        .await;
        assert_eq!((r.state, r.replays), (RunState::Succeeded, 1), "{:?}\n{}", r.outcome, stack.logs());
    }
    assert_eq!(runs::get(&stack.store, &c).await.unwrap().unwrap().state, RunState::Dead, "not ticked, not touched");
    cl.goto(&console_url(&stack, "/audit")).await.unwrap();
    let audit = cl.find(Locator::Css("table.audit")).await.unwrap().text().await.unwrap();
    assert!(audit.contains("runs.bulk") && audit.contains("run.replay"), "{audit}");

    // A joiner dead on a typo'd role: fixed in the edit form, replayed.
    let accepted = stack.accept(&pipedrive_joiner("E-9", "typo@example.com", "Sales Rep.")).await;
    let typo = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await.remove(0);
    assert_eq!(typo.state, RunState::Dead, "{}", stack.logs());
    cl.goto(&console_url(&stack, &format!("/runs/{}", typo.id))).await.unwrap();
    cl.find(Locator::Id("edit-input")).await.expect("an Edit input button").click().await.unwrap();
    let set = wait_for(cl, "edit-set").await;
    set.send_keys("role=Sales Rep").await.unwrap();
    assert_eq!(
        cl.find(Locator::Id("edit-replay")).await.unwrap().prop("checked").await.unwrap().as_deref(),
        Some("true")
    );
    cl.find(Locator::Id("edit-confirm")).await.unwrap().click().await.unwrap();
    let notice = wait_for(cl, "notice").await.text().await.unwrap();
    assert!(notice.starts_with("Edited and replayed"), "{notice}");
    let original = cl.find(Locator::Id("input-original")).await.unwrap().text().await.unwrap();
    assert!(original.contains("Sales Rep."), "{original}");
    browser.screenshot(&format!("console-edit-{backend:?}").to_lowercase()).await;
    let r = eventually(WAIT, "the edited run to succeed", || async {
        let r = runs::get(&stack.store, &typo.id).await.unwrap().unwrap();
        (r.state.is_terminal() && r.replays > 0).then_some(r)
    })
    .await;
    assert_eq!(r.state, RunState::Succeeded, "{:?}\n{}", r.outcome, stack.logs());
    let state = stack.sim_state().await;
    let users = state["pipedrive"]["users"].as_array().unwrap();
    let n = users
        .iter()
        .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case("typo@example.com")))
        .count();
    assert_eq!(n, 1, "one account");
    browser.close().await;
}

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operator_replays_ticked_dead_runs_and_fixes_a_typo_in_the_edit_form() {
        super::an_operator_replays_ticked_dead_runs_and_fixes_a_typo_in_the_edit_form(lifecycle_e2e::Backend::Postgres)
            .await
    }
}
