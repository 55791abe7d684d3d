//! The web console in a real browser (headless Chromium), as an operator uses
//! it: open the dead runs, replay one through its confirmation page and watch
//! it succeed; read the step timeline; discard another with a reason. The
//! screenshots are kept under `target/debug/e2e-artifacts/`.

use fantoccini::Locator;
use lifecycle_domain::RunState;
use lifecycle_e2e::browser::Browser;
use lifecycle_e2e::sim::actions;
use lifecycle_e2e::stack::{pipedrive_joiner, pipedrive_leaver, ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{both_databases, eventually, Backend, Stack, StackOptions};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The console's URL with the credentials in it: Chromium sends them, and
/// keeps sending them to the same origin, as after a login prompt.
fn console_url(stack: &Stack, path: &str) -> String {
    let base = stack.admin_url.replacen("http://", &format!("http://{ADMIN_USER}:{ADMIN_PASSWORD}@"), 1);
    format!("{base}{path}")
}

/// The element with this id, once the page that has it has loaded (a click
/// that submits a form returns before the next page is there).
async fn wait_for(c: &fantoccini::Client, id: &str) -> fantoccini::elements::Element {
    match c.wait().at_most(WAIT).for_element(Locator::Id(id)).await {
        Ok(e) => e,
        Err(e) => panic!("no #{id} on the page ({e}):\n{}", c.source().await.unwrap_or_default()),
    }
}

async fn an_operator_replays_a_dead_run_in_the_console_and_reads_its_timeline(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "console")).await;
    // A leaver whose deactivation got a 403 after both deals were reassigned.
    stack
        .sim_seed(json!({"pipedrive": {
            "users": [{"name": "Leaving Person", "email": "leaver@example.com"}],
            "deals": [{"title": "Deal <b>A</b>", "owner_email": "leaver@example.com"},
                      {"title": "Deal B", "owner_email": "leaver@example.com"}]
        }}))
        .await;
    stack.sim_fault(json!({"vendor": "pipedrive", "method": "PUT", "path": "/api/v1/users/*", "kind": "status", "status": 403, "count": 1})).await;
    let accepted = stack.accept(&pipedrive_leaver("E-1", "leaver@example.com", Some("grace@example.com"))).await;
    let leaver = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await.remove(0);
    assert_eq!(leaver.state, RunState::Dead, "{}", stack.logs());
    // And a joiner whose role does not exist, to discard.
    let accepted = stack.accept(&pipedrive_joiner("E-2", "joiner@example.com", "<script>Astronaut</script>")).await;
    let joiner = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await.remove(0);
    assert_eq!(joiner.state, RunState::Dead);

    // A POST without the console's CSRF token does nothing.
    let forged = stack
        .http
        .post(format!("{}/runs/{}/replay", stack.admin_url, leaver.id))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .form(&[("csrf", "1700000000.00"), ("reason", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let still = lifecycle_store::runs::get(&stack.store, &leaver.id).await.unwrap().unwrap();
    assert_eq!((still.state, still.replays), (RunState::Dead, 0));

    let browser = Browser::start(&stack.log_dir).await;
    let c = &browser.client;

    // The dead runs page lists both, with the vendors' reasons, escaped.
    c.goto(&console_url(&stack, "/dead")).await.expect("opening the dead runs page");
    let row = c.find(Locator::Id(&format!("run-{}", leaver.id))).await.expect("the leaver is listed");
    assert!(row.text().await.unwrap().contains("403"), "the reason is shown");
    let page = c.source().await.unwrap();
    assert!(page.contains(&joiner.id));
    assert!(!page.contains("<script>Astronaut"), "vendor text is escaped");
    browser.screenshot(&format!("console-dead-runs-{backend:?}").to_lowercase()).await;

    // Replay: the button leads to a confirmation page; confirming replays.
    row.find(Locator::Css("a.replay")).await.expect("a replay button").click().await.unwrap();
    let confirm = wait_for(c, "confirm").await;
    browser.screenshot(&format!("console-confirm-replay-{backend:?}").to_lowercase()).await;
    let heading = c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
    assert!(heading.starts_with("Replay run"), "{heading}");
    let source = c.source().await.unwrap();
    assert!(source.contains("reassign_deal:"), "the confirmation names the steps that are kept");
    c.find(Locator::Css("textarea[name=reason]")).await.unwrap().send_keys("permissions fixed").await.unwrap();
    confirm.click().await.unwrap();
    let notice = wait_for(c, "notice").await.text().await.unwrap();
    assert!(notice.starts_with("Replayed"), "{notice}");

    // The run page follows it to the end.
    eventually(WAIT, "the console to show the run succeeded", || async {
        c.refresh().await.ok()?;
        let state = c.find(Locator::Id("run-state")).await.ok()?.text().await.ok()?;
        (state == "succeeded").then_some(())
    })
    .await;
    let timeline = c.find(Locator::Id("timeline")).await.unwrap().text().await.unwrap();
    for step in ["find_user", "reassign_deal:", "deactivate"] {
        assert!(timeline.contains(step), "the timeline shows {step}: {timeline}");
    }
    let deactivate_rows: Vec<String> = {
        let mut rows = Vec::new();
        for tr in c.find_all(Locator::Css("#timeline tbody tr")).await.unwrap() {
            let text = tr.text().await.unwrap();
            if text.contains("deactivate") {
                rows.push(text);
            }
        }
        rows
    };
    assert_eq!(deactivate_rows.len(), 2, "the failed attempt and the successful one: {deactivate_rows:?}");
    assert!(deactivate_rows[0].contains("failed") && deactivate_rows[0].contains("403"), "{deactivate_rows:?}");
    assert!(deactivate_rows[1].contains("succeeded"), "{deactivate_rows:?}");
    assert!(c.source().await.unwrap().contains("admin:admin"), "the run page shows who replayed it");
    browser.screenshot(&format!("console-run-timeline-{backend:?}").to_lowercase()).await;

    // What the browser showed is what happened: no deal moved twice.
    let run = lifecycle_store::runs::get(&stack.store, &leaver.id).await.unwrap().unwrap();
    assert_eq!((run.state, run.replays), (RunState::Succeeded, 1));
    let sim = stack.sim_state().await;
    let acts = actions(&sim, "pipedrive");
    assert_eq!(acts.iter().filter(|a| *a == "deal.update").count(), 2, "{acts:?}");
    assert_eq!(acts.iter().filter(|a| *a == "user.deactivate").count(), 1, "{acts:?}");

    // Discard the joiner: confirmation with a required reason.
    c.goto(&console_url(&stack, "/dead")).await.unwrap();
    let row = c.find(Locator::Id(&format!("run-{}", joiner.id))).await.expect("the joiner is listed");
    row.find(Locator::Css("a.discard")).await.unwrap().click().await.unwrap();
    let confirm = wait_for(c, "confirm").await;
    c.find(Locator::Css("textarea[name=reason]")).await.unwrap().send_keys("HR sent a bogus role").await.unwrap();
    confirm.click().await.unwrap();
    let notice = wait_for(c, "notice").await.text().await.unwrap();
    assert!(notice.starts_with("Discarded"), "{notice}");
    c.goto(&console_url(&stack, "/dead")).await.unwrap();
    assert!(!c.source().await.unwrap().contains(&joiner.id), "a discarded run leaves the dead runs page");

    // The overview and the audit log show it at a glance.
    c.goto(&console_url(&stack, "/")).await.unwrap();
    let counts = c.find(Locator::Css("table.counts")).await.unwrap().text().await.unwrap();
    assert!(counts.contains("pipedrive"), "{counts}");
    browser.screenshot(&format!("console-overview-{backend:?}").to_lowercase()).await;
    c.goto(&console_url(&stack, "/audit")).await.unwrap();
    let audit = c.find(Locator::Css("table.audit")).await.unwrap().text().await.unwrap();
    assert!(audit.contains("run.replay") && audit.contains("permissions fixed"), "{audit}");
    assert!(audit.contains("run.discard") && audit.contains("HR sent a bogus role"), "{audit}");
    c.goto(&console_url(&stack, "/employees?who=E-1")).await.unwrap();
    let apps = c.find(Locator::Css("table.apps")).await.unwrap().text().await.unwrap();
    assert!(apps.contains("pipedrive") && apps.contains("removed"), "{apps}");

    let discarded = lifecycle_store::runs::get(&stack.store, &joiner.id).await.unwrap().unwrap();
    assert_eq!(discarded.discard_reason.as_deref(), Some("HR sent a bogus role"));
    browser.close().await;
}

both_databases!(an_operator_replays_a_dead_run_in_the_console_and_reads_its_timeline);
