//! A big SCIM group PATCH over the real producer (issue 29): 20,000 members
//! answered 200 well within `producer.request_timeout`, then the push made
//! their events in the background, visible with its progress in the admin
//! API, the console and `lifecycle-ctl pushes`, and the runs on their way.

use lifecycle_e2e::stack::{ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use lifecycle_store::entity::scim_user;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Statement};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-scim-token-0123456789";
/// Six batches of the push over the real producer; the answer's speed at 20,000 and 50,000 is
/// BENCHMARKS' ("Big pushes"): here the runs of every member go through the worker too.
const MEMBERS: usize = 3_000;

async fn count(stack: &Stack, sql: &str) -> i64 {
    let db = &stack.store;
    let row = db.query_one(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// `n` SCIM users with nothing applied yet, stored directly (20,000 POSTs
/// would test nothing more and take minutes).
async fn seed_users(stack: &Stack, n: usize) -> Vec<String> {
    let now = chrono::Utc::now();
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let rows: Vec<scim_user::ActiveModel> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let name = format!("push{i}@example.com");
            let resource = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "name": {"givenName": format!("P{i}"), "familyName": "Push"},
                "emails": [{"value": name, "type": "work", "primary": true}],
                "active": true
            });
            scim_user::ActiveModel {
                id: Set(id.clone()),
                user_name_key: Set(name.clone()),
                user_name: Set(name),
                external_id: Set(None),
                active: Set(true),
                version: Set(1),
                resource: Set(resource.to_string()),
                applied: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
        })
        .collect();
    for chunk in rows.chunks(1000) {
        scim_user::Entity::insert_many(chunk.to_vec()).exec_without_returning(&stack.store).await.unwrap();
    }
    ids
}

async fn a_big_group_patch_is_answered_at_once_and_pushed_after(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim.toml");
    // Pipedrive only: the members' runs are Pipedrive joiners.
    let mapping = "[[scim.groups]]\nname = \"Sales\"\napps = { pipedrive = { role = \"Sales Rep\" } }\n";
    std::fs::write(&file, format!("[scim]\ntokens = [\"{TOKEN}\"]\n{mapping}")).unwrap();
    let stack =
        Stack::start(StackOptions::new(backend, "scim-push").env("LIFECYCLE_CONFIG", file.to_str().unwrap())).await;
    let ids = seed_users(&stack, MEMBERS).await;
    let scim = |method: reqwest::Method, path: &str| {
        stack.http.request(method, format!("{}/scim/v2{path}", stack.producer_url)).bearer_auth(TOKEN)
    };
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales"});
    let r = scim(reqwest::Method::POST, "/Groups")
        .header("content-type", "application/scim+json")
        .body(group.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let gid = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // Okta's shape: one add with every member.
    let values: Vec<Value> = ids.iter().map(|id| json!({"value": id, "display": "someone"})).collect();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": values}]
    })
    .to_string();
    let size = body.len();
    let started = Instant::now();
    let r = scim(reqwest::Method::PATCH, &format!("/Groups/{gid}"))
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{}\n{}", &text[..text.len().min(500)], stack.logs());
    eprintln!("{backend:?}: PATCH of {MEMBERS} members ({size} bytes) answered 200 in {took:?}");
    // producer.request_timeout is 10 s; the answer must not come near it.
    assert!(took < Duration::from_secs(5), "the PATCH took {took:?}");
    let sql = format!("SELECT COUNT(*) FROM scim_members WHERE group_id = '{gid}'");
    assert_eq!(count(&stack, &sql).await, MEMBERS as i64, "the memberships are stored with the answer");

    // The push, through the admin API, until done.
    let (status, list) = stack.admin_get("/api/v1/pushes").await;
    assert_eq!(status, 200, "{list}");
    let id = list[0]["id"].as_str().expect("a push is listed").to_string();
    assert_eq!((list[0]["group_name"].as_str(), list[0]["members"].as_i64()), (Some("Sales"), Some(MEMBERS as i64)));
    let drained = Instant::now();
    let done = lifecycle_e2e::eventually(Duration::from_secs(480), "the push done", || async {
        let (_, p) = stack.admin_get(&format!("/api/v1/pushes/{id}")).await;
        (p["state"] == "done").then_some(p)
    })
    .await;
    eprintln!("{backend:?}: push of {MEMBERS} done about {:?} after the answer", drained.elapsed());
    assert_eq!((done["members_done"].as_i64(), done["events"].as_i64()), (Some(MEMBERS as i64), Some(MEMBERS as i64)));
    assert!(done["started_at"].is_string() && done["finished_at"].is_string(), "{done}");
    let joiners = "SELECT COUNT(*) FROM events WHERE source = 'scim' AND event_type = 'joiner'";
    assert_eq!(count(&stack, joiners).await, MEMBERS as i64);
    assert_eq!(count(&stack, "SELECT COUNT(*) FROM runs WHERE vendor = 'pipedrive'").await, MEMBERS as i64);

    // Shown in the console and by the ctl.
    let page = stack
        .http
        .get(format!("{}/pushes", stack.admin_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&id) && page.contains(&format!("{MEMBERS} / {MEMBERS}")), "{page}");
    let out = stack.ctl(&["pushes", "watch", &id]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("{MEMBERS}/{MEMBERS} members")), "{}", out.stdout);

    // The runs go at Pipedrive's pace: the first ones succeed.
    let first = lifecycle_e2e::eventually(Duration::from_secs(60), "a Pipedrive run done", || async {
        let n = count(&stack, "SELECT COUNT(*) FROM runs WHERE vendor = 'pipedrive' AND state = 'succeeded'").await;
        (n > 0).then_some(n)
    })
    .await;
    assert!(first > 0);
    let dead = count(&stack, "SELECT COUNT(*) FROM runs WHERE state = 'dead'").await;
    assert_eq!(dead, 0, "{}", stack.logs());
}

both_databases!(a_big_group_patch_is_answered_at_once_and_pushed_after);
