//! Jira Cloud workflows end to end: producer -> RabbitMQ -> worker -> simulator.

use lifecycle_domain::RunState;
use lifecycle_e2e::{both_databases, call_at_ms, on_database, Backend, Stack, StackOptions};
use lifecycle_store::entity::run::Model as Run;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// Groups of the simulator's default fixture.
const SOFTWARE: &str = "276f955c-63d7-42c8-9520-92d01dca0625";
const ENGINEERING: &str = "e3d5a7c9-1b2f-4a6e-8c0d-5f7b9a1e3c24";
const PRODUCT: &str = "b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01";
const DIRECTORY: &str = "d2b1f6c0-5a8e-4e3b-9c71-0f4a6b2e8d15";

/// A stack whose worker knows the simulator's SCIM directory.
fn with_directory(backend: Backend, name: &str) -> StackOptions {
    StackOptions::new(backend, name)
        .env("LIFECYCLE_VENDORS__JIRA__SCIM__BASE_URL", &format!("{{sim}}/jira/scim/directory/{DIRECTORY}"))
        .env("LIFECYCLE_VENDORS__JIRA__SCIM__TOKEN", "jira-scim-token")
}

fn joiner(id: &str, email: &str, groups: &[&str]) -> Value {
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": { "id": id, "email": email, "given_name": "Ada", "family_name": "Lovelace" },
        "apps": { "jira": { "products": ["jira-software"], "groups": groups } }
    })
}

fn mover(id: &str, email: &str, groups: &[&str]) -> Value {
    json!({
        "type": "mover",
        "employee": { "id": id, "email": email },
        "apps": { "jira": { "groups": groups } }
    })
}

fn leaver(id: &str, email: &str) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": { "id": id, "email": email },
        "apps": { "jira": {} }
    })
}

fn users(state: &Value) -> Vec<Value> {
    state["jira"]["users"].as_array().cloned().unwrap_or_default()
}

fn user_by_email(state: &Value, email: &str) -> Option<Value> {
    users(state).into_iter().find(|u| u["emailAddress"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
}

fn groups_of(user: &Value) -> Vec<String> {
    user["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect()
}

fn log(state: &Value) -> Vec<Value> {
    state["jira"]["log"].as_array().cloned().unwrap_or_default()
}

fn actions(state: &Value) -> Vec<String> {
    log(state).iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

/// Posts the event and waits for its single Jira run to end.
async fn run(stack: &Stack, event: &Value) -> Run {
    let accepted = stack.accept(event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    assert_eq!(runs.len(), 1);
    let run = runs.into_iter().next().unwrap();
    // Shown with a failing test's output.
    eprintln!("run {}: {} ({:?}): {}", run.id, run.state, run.access, run.outcome.as_deref().unwrap_or_default());
    run
}

fn outcome(run: &Run) -> &str {
    run.outcome.as_deref().unwrap_or_default()
}

async fn seed_user(stack: &Stack, user: Value) -> Value {
    let created = stack.sim_seed(json!({ "jira": { "users": [user] } })).await;
    created["jira"]["users"][0].clone()
}

// ---------------------------------------------------------------------------------------------

async fn joiner_creates_the_user_with_products_and_groups_through_a_429_and_a_5xx(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-joiner")).await;
    stack
        .sim_fault(json!({"vendor": "jira", "method": "GET", "path": "/user/search", "kind": "status", "status": 429}))
        .await;
    stack
        .sim_fault(json!({"vendor": "jira", "method": "POST", "path": "/group/user", "kind": "status", "status": 503}))
        .await;

    let run = run(&stack, &joiner("E-1001", "ada@example.com", &[SOFTWARE, ENGINEERING])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}\n{}", run.outcome, run.last_error, stack.logs());
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    assert!(run.attempts >= 3, "the 429 and the 503 were each retried: {} attempts", run.attempts);
    let text = outcome(&run);
    assert!(
        text.contains("created Jira user") && text.contains("jira-software-users") && text.contains("engineering"),
        "{text}"
    );

    let state = stack.sim_state().await;
    let matching: Vec<Value> = users(&state).into_iter().filter(|u| u["emailAddress"] == "ada@example.com").collect();
    assert_eq!(matching.len(), 1, "exactly one user");
    let ada = &matching[0];
    // `displayName` is "no longer available" at creation: the person names themself when
    // they accept the invitation.
    assert_eq!(ada["displayName"], "ada");
    assert_eq!(ada["active"], true);
    assert_eq!(ada["siteAccess"], true);
    assert_eq!(ada["products"], json!(["jira-software"]));
    let mut groups = groups_of(ada);
    groups.sort();
    let mut wanted = vec![SOFTWARE.to_string(), ENGINEERING.to_string()];
    wanted.sort();
    assert_eq!(groups, wanted);
    assert_eq!(state["jira"]["invitations"].as_array().unwrap().len(), 1, "Jira sent one invitation");
    let acts = actions(&state);
    assert_eq!(acts.iter().filter(|a| *a == "user.create").count(), 1, "{acts:?}");
    assert_eq!(acts.iter().filter(|a| *a == "group.add").count(), 2, "{acts:?}");
    assert_eq!(state["jira"]["counters"]["rate_limited"], 1);

    let statuses: Vec<i64> = stack
        .sim_calls("jira")
        .await
        .iter()
        .filter(|c| c["method"] == "POST" && c["path"] == "/group/user")
        .map(|c| c["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 201, 201], "the 503 was retried, then both groups were added once");

    // The journal holds the vendor's ids.
    let steps = lifecycle_store::steps::load(&stack.store, &run.id).await.unwrap();
    let ensure = steps.iter().find(|s| s.key == "ensure_user").unwrap();
    assert!(ensure.output.as_deref().unwrap().contains(ada["accountId"].as_str().unwrap()), "{:?}", ensure.output);
}

async fn a_create_whose_answer_was_lost_is_adopted_not_duplicated(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-lostcreate")).await;
    stack
        .sim_fault(
            json!({"vendor": "jira", "method": "POST", "path": "/user", "kind": "apply_then_fail", "status": 500}),
        )
        .await;
    let run = run(&stack, &joiner("E-1002", "lost@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.outcome);
    assert!(outcome(&run).contains("found existing Jira user"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    assert_eq!(users(&state).iter().filter(|u| u["emailAddress"] == "lost@example.com").count(), 1);
    assert_eq!(actions(&state).iter().filter(|a| *a == "user.create").count(), 1);
    assert_eq!(groups_of(&user_by_email(&state, "lost@example.com").unwrap()), [SOFTWARE]);
}

async fn leaver_removes_every_group_then_site_access_in_that_order(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-leaver")).await;
    let seeded = seed_user(
        &stack,
        json!({"emailAddress": "leaver@example.com", "displayName": "Lee Ver", "products": ["jira-software"],
               "groups": [SOFTWARE, ENGINEERING, PRODUCT]}),
    )
    .await;
    stack
        .sim_fault(json!({"vendor": "jira", "method": "DELETE", "path": "/user", "kind": "status", "status": 502}))
        .await;

    let run = run(&stack, &leaver("E-2001", "leaver@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}\n{}", run.outcome, run.last_error, stack.logs());
    assert_eq!(run.access.map(|a| a.as_str()), Some("removed"));
    let text = outcome(&run);
    assert!(
        text.contains("from 3 group(s)")
            && text.contains("DELETE /user")
            && text.contains("no SCIM directory is configured"),
        "{text}"
    );

    let state = stack.sim_state().await;
    let lee = user_by_email(&state, "leaver@example.com").unwrap();
    assert_eq!(lee["siteAccess"], false, "site access removed");
    assert_eq!(lee["groups"], json!([]));
    let entries = log(&state);
    let acts = actions(&state);
    assert_eq!(acts, ["group.remove", "group.remove", "group.remove", "user.delete"], "groups first, then site access");
    assert!(entries.iter().all(|e| e["account_id"] == seeded["accountId"]));
    assert_eq!(entries[3]["groups_removed"], json!([]), "nothing was left for DELETE /user to remove");
}

async fn leaver_deactivates_through_scim_when_a_directory_is_configured(backend: Backend) {
    let stack = Stack::start(with_directory(backend, "jira-scim-leaver")).await;
    seed_user(
        &stack,
        json!({"emailAddress": "managed@example.com", "displayName": "Man Aged", "scimManaged": true,
               "products": ["jira-software"], "groups": [SOFTWARE]}),
    )
    .await;
    let run = run(&stack, &leaver("E-2002", "managed@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}\n{}", run.outcome, run.last_error, stack.logs());
    assert_eq!(run.access.map(|a| a.as_str()), Some("deactivated"));
    let text = outcome(&run);
    assert!(text.contains("through the SCIM directory") && text.contains("not deleted"), "{text}");

    let state = stack.sim_state().await;
    let user = user_by_email(&state, "managed@example.com").unwrap();
    assert_eq!(user["active"], false, "deactivated");
    assert_eq!(user["siteAccess"], true, "not deleted");
    assert_eq!(user["groups"], json!([]));
    assert_eq!(actions(&state), ["group.remove", "scim.user.deactivate"]);
}

async fn a_scim_managed_leaver_without_a_directory_configured_needs_a_person(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-scim-refused")).await;
    seed_user(&stack, json!({"emailAddress": "idp@example.com", "scimManaged": true, "groups": [SOFTWARE]})).await;
    let run = run(&stack, &leaver("E-2003", "idp@example.com")).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{:?}", run.outcome);
    let text = outcome(&run);
    assert!(
        text.contains("refused to remove their site access")
            && text.contains("SCIM")
            && text.contains("vendors.jira.scim"),
        "{text}"
    );
    let state = stack.sim_state().await;
    let user = user_by_email(&state, "idp@example.com").unwrap();
    assert_eq!(user["siteAccess"], true);
    assert_eq!(user["active"], true);
    assert_eq!(actions(&state), ["group.remove"], "the groups went; nothing else changed");
}

async fn a_hidden_address_is_never_matched_by_a_leaver(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-hidden-leaver")).await;
    let hidden = seed_user(
        &stack,
        json!({"emailAddress": "quiet@example.com", "displayName": "Quiet Person", "emailVisible": false,
               "groups": [SOFTWARE]}),
    )
    .await;
    let run = run(&stack, &leaver("E-2004", "quiet@example.com")).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{:?}", run.outcome);
    let text = outcome(&run);
    assert!(
        text.contains("hide their address") && text.contains(hidden["accountId"].as_str().unwrap()),
        "the person is told which account to check: {text}"
    );
    let state = stack.sim_state().await;
    assert_eq!(log(&state), Vec::<Value>::new(), "no user was touched");
    let user = users(&state).into_iter().find(|u| u["accountId"] == hidden["accountId"]).unwrap();
    assert_eq!((user["active"].clone(), user["siteAccess"].clone()), (json!(true), json!(true)));
    assert_eq!(groups_of(&user), [SOFTWARE]);
}

async fn a_joiner_never_adopts_or_duplicates_an_account_whose_address_is_hidden(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-hidden-joiner")).await;
    let hidden = seed_user(
        &stack,
        json!({"emailAddress": "shy@example.com", "displayName": "Shy Person", "emailVisible": false}),
    )
    .await;
    let before = users(&stack.sim_state().await).len();
    let run = run(&stack, &joiner("E-1003", "shy@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{:?}", run.outcome);
    let text = outcome(&run);
    assert!(
        text.contains("hides their email address")
            && text.contains(hidden["accountId"].as_str().unwrap())
            && text.contains("Nothing was changed"),
        "{text}"
    );
    let state = stack.sim_state().await;
    assert_eq!(users(&state).len(), before, "no duplicate account");
    assert_eq!(log(&state), Vec::<Value>::new(), "the hidden account was not given the groups");
}

async fn a_joiner_creates_its_user_beside_hidden_addresses_that_only_look_alike(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-hidden-alike")).await;
    // The search for "ada@example.com" also returns this account, with a null address.
    let lookalike = seed_user(
        &stack,
        json!({"emailAddress": "ada@example.com.au", "displayName": "Other Ada", "emailVisible": false,
               "groups": [PRODUCT]}),
    )
    .await;
    let run = run(&stack, &joiner("E-1004", "ada@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.outcome);
    assert!(outcome(&run).contains("were not touched"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    let ada = user_by_email(&state, "ada@example.com").unwrap();
    assert_ne!(ada["accountId"], lookalike["accountId"]);
    assert_eq!(groups_of(&ada), [SOFTWARE]);
    let other = users(&state).into_iter().find(|u| u["accountId"] == lookalike["accountId"]).unwrap();
    assert_eq!(groups_of(&other), [PRODUCT], "the look-alike kept exactly its groups");
    assert!(log(&state).iter().all(|e| e["account_id"] != lookalike["accountId"]), "the look-alike was never touched");
}

/// "If the user exists and has access to Jira, the operation returns a 201": an account whose
/// address Jira hides is not adopted from the search, but when `POST /user` answers with it,
/// it is the person's (one account per address): the run says it existed and created nothing.
async fn a_201_for_an_existing_account_is_reported_as_existing(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-existing-201")).await;
    let hidden = seed_user(
        &stack,
        json!({"emailAddress": "known@example.com", "emailVisible": false, "products": ["jira-software"]}),
    )
    .await;
    let run = run(&stack, &joiner("E-1009", "known@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}", run.outcome, run.last_error);
    let text = outcome(&run);
    assert!(
        text.starts_with("found existing Jira user")
            && text.contains(hidden["accountId"].as_str().unwrap())
            && text.contains("nothing was created"),
        "{text}"
    );
    let state = stack.sim_state().await;
    assert_eq!(users(&state).iter().filter(|u| u["emailAddress"] == "known@example.com").count(), 1);
    assert_eq!(state["jira"]["invitations"], json!([]), "no invitation: nothing was created");
    assert_eq!(actions(&state), ["group.add"]);
}

async fn with_a_directory_a_hidden_address_is_found_through_scim(backend: Backend) {
    let stack = Stack::start(with_directory(backend, "jira-scim-hidden")).await;
    let hidden = seed_user(
        &stack,
        json!({"emailAddress": "private@example.com", "emailVisible": false, "scimManaged": true, "groups": [SOFTWARE]}),
    )
    .await;
    let run = run(&stack, &leaver("E-2005", "private@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}", run.outcome, run.last_error);
    assert_eq!(run.access.map(|a| a.as_str()), Some("deactivated"));
    assert!(outcome(&run).contains("SCIM directory"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    let user = users(&state).into_iter().find(|u| u["accountId"] == hidden["accountId"]).unwrap();
    assert_eq!(user["active"], false);
    assert_eq!(actions(&state), ["group.remove", "scim.user.deactivate"]);
}

async fn a_deactivated_rejoiner_is_reactivated_through_scim_not_duplicated(backend: Backend) {
    let stack = Stack::start(with_directory(backend, "jira-rejoin")).await;
    let seeded = seed_user(
        &stack,
        json!({"emailAddress": "back@example.com", "active": false, "scimManaged": true, "products": ["jira-software"]}),
    )
    .await;
    let run = run(&stack, &joiner("E-1007", "back@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}", run.outcome, run.last_error);
    assert!(outcome(&run).contains("reactivated Jira user"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    assert_eq!(users(&state).iter().filter(|u| u["emailAddress"] == "back@example.com").count(), 1);
    let user = user_by_email(&state, "back@example.com").unwrap();
    assert_eq!(user["accountId"], seeded["accountId"]);
    assert_eq!(user["active"], true);
    assert_eq!(groups_of(&user), [SOFTWARE]);
    assert_eq!(actions(&state), ["scim.user.activate", "group.add"]);
}

async fn an_existing_user_without_the_product_is_given_the_groups_and_a_person_grants_the_product(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-noproduct")).await;
    seed_user(&stack, json!({"emailAddress": "exists@example.com", "products": []})).await;
    let run = run(&stack, &joiner("E-1008", "exists@example.com", &[SOFTWARE])).await;
    assert_eq!(run.state, RunState::NeedsManualAction, "{:?}", run.outcome);
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let text = outcome(&run);
    assert!(text.contains("found existing Jira user") && text.contains("lacks access to jira-software"), "{text}");
    let state = stack.sim_state().await;
    let user = user_by_email(&state, "exists@example.com").unwrap();
    assert_eq!(groups_of(&user), [SOFTWARE], "the groups were given all the same");
    assert_eq!(user["products"], json!([]));
    assert_eq!(actions(&state), ["group.add"], "no second account");
}

async fn a_leaver_already_deactivated_by_the_identity_provider_stays_deactivated(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-already-off")).await;
    seed_user(
        &stack,
        json!({"emailAddress": "off@example.com", "active": false, "scimManaged": true, "groups": [SOFTWARE]}),
    )
    .await;
    let run = run(&stack, &leaver("E-2006", "off@example.com")).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}", run.outcome, run.last_error);
    assert_eq!(run.access.map(|a| a.as_str()), Some("deactivated"));
    assert!(outcome(&run).contains("already deactivated"), "{}", outcome(&run));
    let state = stack.sim_state().await;
    let user = user_by_email(&state, "off@example.com").unwrap();
    assert_eq!((user["active"].clone(), user["groups"].clone()), (json!(false), json!([])));
    assert_eq!(actions(&state), ["group.remove"]);
}

async fn mover_converges_groups_addressing_them_by_id(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-mover")).await;
    seed_user(&stack, json!({"emailAddress": "mo@example.com", "groups": [SOFTWARE, ENGINEERING]})).await;
    let run = run(&stack, &mover("E-3001", "mo@example.com", &[SOFTWARE, PRODUCT])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.outcome);
    assert_eq!(run.access.map(|a| a.as_str()), Some("active"));
    let text = outcome(&run);
    assert!(text.contains("added to group(s) product") && text.contains("removed from group(s) engineering"), "{text}");

    let state = stack.sim_state().await;
    let mut groups = groups_of(&user_by_email(&state, "mo@example.com").unwrap());
    groups.sort();
    let mut wanted = vec![SOFTWARE.to_string(), PRODUCT.to_string()];
    wanted.sort();
    assert_eq!(groups, wanted);
    assert_eq!(actions(&state), ["group.add", "group.remove"]);

    // Every group call named the group by its id, never by name (the catalogue, read whole
    // from /group/bulk, names no group at all).
    let group_calls: Vec<Value> = stack
        .sim_calls("jira")
        .await
        .into_iter()
        .filter(|c| c["path"] == "/group/user" || c["path"] == "/group/bulk")
        .collect();
    assert!(!group_calls.is_empty());
    for c in &group_calls {
        let q = c["query"].as_str().unwrap_or_default();
        assert!(c["path"] == "/group/bulk" || q.contains("groupId="), "{c}");
        assert!(!q.to_lowercase().contains("groupname"), "{c}");
    }
}

async fn an_unknown_group_id_is_dead_with_a_reason_and_creates_nobody(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-badgroup")).await;
    let missing = "0b5e1d2c-9f8a-4c7b-8e6d-5a4b3c2d1e0f";
    let run = run(&stack, &joiner("E-1005", "bob@example.com", &[SOFTWARE, missing])).await;
    assert_eq!(run.state, RunState::Dead);
    let text = outcome(&run);
    assert!(
        text.contains(&format!("no group with groupId {missing}")) && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(run.attempts, 1, "a permanent error is not retried");
    let state = stack.sim_state().await;
    assert!(user_by_email(&state, "bob@example.com").is_none(), "nobody created");
    assert_eq!(log(&state), Vec::<Value>::new());
}

async fn retry_after_is_honoured(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "jira-retryafter")).await;
    stack.sim_config(json!({"jira": {"retry_after_secs": 3}})).await;
    stack
        .sim_fault(json!({"vendor": "jira", "method": "POST", "path": "/user", "kind": "status", "status": 429}))
        .await;
    let run = run(&stack, &joiner("E-1006", "patient@example.com", &[])).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?} / {:?}", run.outcome, run.last_error);
    assert_eq!(run.attempts, 2);

    let calls = stack.sim_calls("jira").await;
    let limited = calls.iter().position(|c| c["status"] == 429).expect("the 429 was served");
    let next = calls.get(limited + 1).expect("Jira was called again");
    let waited = call_at_ms(next) - call_at_ms(&calls[limited]);
    assert!(waited >= 3000, "the next call came {waited} ms after a Retry-After of 3 s");
    assert!(user_by_email(&stack.sim_state().await, "patient@example.com").is_some());
}

// Recovery (a 429 or 5xx, an answer lost after a write) on both databases; the rest of the
// vendor's behaviour once, shared between them (`on_database!`).
both_databases!(
    joiner_creates_the_user_with_products_and_groups_through_a_429_and_a_5xx,
    a_create_whose_answer_was_lost_is_adopted_not_duplicated,
);
on_database!(
    Sqlite:
    leaver_removes_every_group_then_site_access_in_that_order,
    a_scim_managed_leaver_without_a_directory_configured_needs_a_person,
    a_joiner_never_adopts_or_duplicates_an_account_whose_address_is_hidden,
    a_201_for_an_existing_account_is_reported_as_existing,
    a_deactivated_rejoiner_is_reactivated_through_scim_not_duplicated,
    an_existing_user_without_the_product_is_given_the_groups_and_a_person_grants_the_product,
    an_unknown_group_id_is_dead_with_a_reason_and_creates_nobody,
);
on_database!(
    Postgres:
    leaver_deactivates_through_scim_when_a_directory_is_configured,
    a_hidden_address_is_never_matched_by_a_leaver,
    a_joiner_creates_its_user_beside_hidden_addresses_that_only_look_alike,
    with_a_directory_a_hidden_address_is_found_through_scim,
    a_leaver_already_deactivated_by_the_identity_provider_stays_deactivated,
    mover_converges_groups_addressing_them_by_id,
    retry_after_is_honoured,
);
