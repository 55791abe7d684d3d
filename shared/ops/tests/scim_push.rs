//! Big SCIM group writes as pushes (issue 29), in process against a real
//! database (SQLite and PostgreSQL): the write answers with the membership
//! stored and a push, the drainer makes the per-person events afterwards in
//! batches, once each, with the keys the write itself would have used.

use lifecycle_ops::push::{self, Batch};
use lifecycle_ops::scim::Change;
use lifecycle_store::entity::scim_user;
use lifecycle_store::testing::Backend;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, Statement};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Pipedrive only, so seeded users (no `everyone`) start with nothing; for
/// someone in both groups, Managers (listed first) wins Pipedrive's one role.
const MAPPING: &str = r#"
[[scim.groups]]
name = "Managers"
apps = { pipedrive = { role = "Sales Manager" } }
[[scim.groups]]
name = "Sales"
apps = { pipedrive = { role = "Sales Rep" } }
"#;

#[path = "support/scim_fixture.rs"]
mod scim_fixture;
use scim_fixture::Fixture;

async fn start(backend: Backend) -> Fixture {
    scim_fixture::start(backend, MAPPING).await
}

fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

impl Fixture {
    /// `n` active users with nothing applied yet (ids `uid(0..n)`), stored
    /// directly: creating them one by one through SCIM would take minutes.
    async fn seed_users(&self, n: usize) {
        let now = chrono::Utc::now();
        let rows: Vec<scim_user::ActiveModel> = (0..n)
            .map(|i| {
                let name = format!("user{i}@example.com");
                let resource = json!({
                    "schemas": [lifecycle_scim::USER_SCHEMA],
                    "userName": name,
                    "externalId": format!("ext-{i}"),
                    "name": {"givenName": format!("U{i}"), "familyName": "Test"},
                    "emails": [{"value": name, "type": "work", "primary": true}],
                    "active": true
                });
                scim_user::ActiveModel {
                    id: Set(uid(i)),
                    user_name_key: Set(name.clone()),
                    user_name: Set(name),
                    external_id: Set(Some(format!("ext-{i}"))),
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
            scim_user::Entity::insert_many(chunk.to_vec()).exec_without_returning(&self.db).await.unwrap();
        }
    }

    async fn new_group(&self, name: &str) -> String {
        let body = json!({"schemas": [lifecycle_scim::GROUP_SCHEMA], "displayName": name});
        self.scim().create_group(&body).await.unwrap().resource.id
    }

    /// Adds (or removes) `users` to the group in one PATCH; the events it made itself.
    async fn patch(&self, group: &str, op: &str, users: std::ops::Range<usize>) -> usize {
        let values: Vec<Value> = users.map(|i| json!({"value": uid(i)})).collect();
        let ops = json!([{"op": op, "path": "members", "value": values}]);
        let body = json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": ops});
        let max = lifecycle_scim::patch::MAX_GROUP_ELEMENTS;
        let change = Change::Patch(lifecycle_scim::patch::parse_request_with(&body, max).unwrap());
        self.scim().update_group_answering(group, change, None, false).await.unwrap().events
    }

    /// Drains every pending push as `owner`; the events stored.
    async fn drain(&self, owner: &str) -> usize {
        push::drain(&self.scim(), owner, || false, &Notify::new()).await
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one(Statement::from_string(self.db.get_database_backend(), sql.to_string()))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    async fn events_of_type(&self, ty: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM events WHERE source = 'scim' AND event_type = '{ty}'")).await
    }

    async fn keys(&self) -> BTreeSet<String> {
        let rows = self
            .db
            .query_all(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT idempotency_key FROM events WHERE source = 'scim'".to_string(),
            ))
            .await
            .unwrap();
        rows.iter().map(|r| r.try_get::<String>("", "idempotency_key").unwrap()).collect()
    }

    async fn only_push(&self) -> push::Push {
        let all = push::list(&self.db, false, 100).await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap()
    }
}

/// A PATCH adding 5,000 members answers with no event made, a push
/// holding them; the drain makes exactly one joiner each, keyed by the
/// group's version and the member. Then a full PUT of 5,000 (1,000 out,
/// 1,000 new) makes exactly the leavers and joiners that changed. 5,000 is
/// ten batches, the same code as 50,000 (100 batches), which `bench` below
/// times in a release build: a debug build drains 50,000 in minutes, which
/// the suite has no time for.
async fn a_big_patch_then_a_full_put(backend: Backend) {
    const N: usize = 5_000;
    const BATCHES: i32 = (N / 500) as i32;
    let f = start(backend).await;
    f.seed_users(N + 1000).await;
    let sales = f.new_group("Sales").await;
    let started = Instant::now();
    let made = f.patch(&sales, "add", 0..N).await;
    eprintln!("{backend:?}: PATCH adding {N} members answered in {:?}", started.elapsed());
    assert_eq!(made, 0, "the request makes no event itself");
    let p = f.only_push().await;
    assert_eq!((p.members, p.members_done, p.batches, p.state.as_str()), (N as i32, 0, BATCHES, "pending"));
    assert_eq!((p.group_name.as_str(), p.change.as_str(), p.source.as_str()), ("Sales", "add", "scim"));
    assert_eq!(f.scalar(&format!("SELECT COUNT(*) FROM scim_members WHERE group_id = '{sales}'")).await, N as i64);
    assert_eq!(f.events_of_type("joiner").await, 0);

    let started = Instant::now();
    assert_eq!(f.drain("producer-a").await, N);
    let took = started.elapsed();
    eprintln!("{backend:?}: drained {N} events in {took:?} ({:.0} events/s)", N as f64 / took.as_secs_f64());
    let p = push::get(&f.db, &p.id).await.unwrap().unwrap();
    assert!(push::is_done(&p), "{p:?}");
    assert_eq!((p.members_done, p.events, p.batches_done), (N as i32, N as i32, BATCHES));
    assert!(p.started_at.is_some() && p.finished_at.is_some());
    let expected: BTreeSet<String> = (0..N).map(|i| format!("scim:group:{sales}:v2:user:{}:joiner", uid(i))).collect();
    assert_eq!(f.keys().await, expected, "one joiner per member, keyed by the push and the member");
    assert_eq!(f.scalar("SELECT COUNT(*) FROM runs WHERE vendor = 'pipedrive'").await, N as i64);
    assert_eq!(f.drain("producer-a").await, 0, "nothing left to drain");

    // A full PUT of N members: the first 1,000 leave, 1,000 new join.
    let members: Vec<Value> = (1000..N + 1000).map(|i| json!({"value": uid(i)})).collect();
    let body = json!({"schemas": [lifecycle_scim::GROUP_SCHEMA], "displayName": "Sales", "members": members});
    let started = Instant::now();
    let w = f.scim().update_group(&sales, Change::Replace(body), None).await.unwrap();
    eprintln!("{backend:?}: PUT of {N} members answered in {:?}", started.elapsed());
    assert_eq!((w.events, w.resource.version), (0, 3));
    assert_eq!(w.resource.members.as_ref().map(Vec::len), Some(N));
    let put = push::list(&f.db, true, 10).await.unwrap();
    assert_eq!(put.len(), 1);
    assert_eq!((put[0].members, put[0].change.as_str()), ((N + 1000) as i32, "replace"));
    let started = Instant::now();
    assert_eq!(f.drain("producer-b").await, 2000);
    eprintln!("{backend:?}: drained the PUT's {} members in {:?}", N + 1000, started.elapsed());
    assert_eq!(f.events_of_type("leaver").await, 1000);
    assert_eq!(f.events_of_type("joiner").await, (N + 1000) as i64);
    let keys = f.keys().await;
    assert!(keys.contains(&format!("scim:group:{sales}:v3:user:{}:leaver", uid(0))));
    assert!(keys.contains(&format!("scim:group:{sales}:v3:user:{}:joiner", uid(N + 999))));
}

/// A producer that dies mid-batch leaves nothing of the batch; another takes
/// the push over once the lease lapses and makes the rest, each event once;
/// the first, back, finds the push no longer its own. Made again from the
/// start with the members' applied state rewound, the push stores nothing
/// new: the keys find the events already stored.
async fn a_crash_mid_batch_and_a_rerun_make_nothing_twice(backend: Backend) {
    const N: usize = 1200;
    let f = start(backend).await;
    f.seed_users(N).await;
    let sales = f.new_group("Sales").await;
    assert_eq!(f.patch(&sales, "add", 0..N).await, 0);
    let s = f.scim();
    let p = push::claim(&f.db, "producer-a").await.unwrap().expect("a pending push");
    assert_eq!(p.batches, 3);
    assert!(push::claim(&f.db, "producer-b").await.unwrap().is_none(), "producer-a holds it");
    assert_eq!(
        push::run_batch(&s, "producer-a", &p, 0).await.unwrap(),
        Batch::Done { members: 500, events: 500, last: false }
    );
    push::crash_in_batch(&s, "producer-a", &p, 1).await.unwrap();
    assert_eq!(f.events_of_type("joiner").await, 500, "the crashed batch left nothing");
    let seen = push::get(&f.db, &p.id).await.unwrap().unwrap();
    assert_eq!((seen.members_done, seen.batches_done), (500, 1));

    // The lease lapses: producer-b takes the push over.
    let later = chrono::Utc::now() + chrono::Duration::from_std(push::LEASE + Duration::from_secs(1)).unwrap();
    let taken = lifecycle_store::push::claim(&f.db, "producer-b", push::LEASE, later).await.unwrap().unwrap();
    assert_eq!((taken.next_batch, taken.attempts), (1, 2));
    // Both try batch 1 at once: exactly one makes it.
    let (a, b) =
        tokio::join!(push::run_batch(&s, "producer-a", &taken, 1), push::run_batch(&s, "producer-b", &taken, 1));
    assert_eq!(a.unwrap(), Batch::NotOurs, "producer-a lost the lease");
    assert_eq!(b.unwrap(), Batch::Done { members: 500, events: 500, last: false });
    assert_eq!(
        push::run_batch(&s, "producer-b", &taken, 2).await.unwrap(),
        Batch::Done { members: 200, events: 200, last: true }
    );
    assert_eq!(push::run_batch(&s, "producer-b", &taken, 2).await.unwrap(), Batch::NotOurs, "done once");
    assert_eq!(f.events_of_type("joiner").await, N as i64);
    let expected: BTreeSet<String> = (0..N).map(|i| format!("scim:group:{sales}:v2:user:{}:joiner", uid(i))).collect();
    assert_eq!(f.keys().await, expected);

    // Rewound as if every batch's progress had been lost after its events were stored.
    for sql in [
        format!("UPDATE scim_pushes SET next_batch = 0, members_done = 0, events = 0, state = 'pending', lease_owner = NULL, lease_until = NULL WHERE id = '{}'", p.id),
        "UPDATE scim_users SET applied = NULL".to_string(),
    ] {
        f.db.execute(Statement::from_string(f.db.get_database_backend(), sql)).await.unwrap();
    }
    assert_eq!(f.drain("producer-c").await, 0, "every event is found by its key");
    assert_eq!(f.events_of_type("joiner").await, N as i64);
    let again = push::get(&f.db, &p.id).await.unwrap().unwrap();
    assert!(push::is_done(&again));
    assert_eq!((again.members_done, again.events), (N as i32, 0));
}

/// Members removed by a push lose what the group gave as the write itself
/// would say it: a mover where another group still gives the vendor (another
/// Pipedrive role), a leaver where nothing does.
async fn removals_make_movers_and_leavers(backend: Backend) {
    let f = start(backend).await;
    f.seed_users(1000).await;
    let managers = f.new_group("Managers").await;
    let sales = f.new_group("Sales").await;
    assert_eq!(f.patch(&managers, "add", 0..600).await, 0);
    assert_eq!(f.patch(&sales, "add", 0..1000).await, 0);
    assert_eq!(f.drain("producer-a").await, 1000, "one joiner each, whichever push came first");
    assert_eq!(f.events_of_type("joiner").await, 1000);

    assert_eq!(f.patch(&managers, "remove", 0..600).await, 0);
    assert_eq!(f.drain("producer-a").await, 600);
    assert_eq!(f.events_of_type("mover").await, 600);
    let roles =
        f.db.query_all(Statement::from_string(
            f.db.get_database_backend(),
            "SELECT payload FROM events WHERE event_type = 'mover'".to_string(),
        ))
        .await
        .unwrap();
    for r in roles {
        let payload: Value = serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap();
        assert_eq!(payload["apps"]["pipedrive"]["role"], "Sales Rep", "{payload}");
    }

    assert_eq!(f.patch(&sales, "remove", 0..700).await, 0);
    assert_eq!(f.drain("producer-a").await, 700);
    assert_eq!(f.events_of_type("leaver").await, 700);
    // A small change is still worked out in the request itself.
    assert_eq!(f.patch(&sales, "remove", 700..710).await, 10);
    assert_eq!(f.events_of_type("leaver").await, 710);
    // Deleting a mapped group of many: the push keeps its members, the group is gone.
    assert_eq!(f.patch(&sales, "add", 0..700).await, 0);
    assert_eq!(f.drain("producer-a").await, 700);
    assert_eq!(f.scim().delete_group(&sales, None).await.unwrap(), 0);
    let last = push::list(&f.db, true, 10).await.unwrap();
    assert_eq!((last.len(), last[0].change.as_str(), last[0].members), (1, "delete", 990));
    assert_eq!(f.drain("producer-a").await, 990);
    assert_eq!(f.events_of_type("leaver").await, 710 + 990);
}

/// The figures of BENCHMARKS.md ("Big pushes"): each PATCH's answer (the
/// body parsed as the producer parses it, then the write), a PUT of 50,000,
/// and the drain rate. Run in release:
/// `cargo test --release -p lifecycle-ops --test scim_push -- --ignored --nocapture bench`.
async fn bench(backend: Backend) {
    for n in [5_000, 9_000, 20_000, 50_000] {
        let f = start(backend).await;
        f.seed_users(n).await;
        let sales = f.new_group("Sales").await;
        let values: Vec<Value> =
            (0..n).map(|i| json!({"value": uid(i), "display": format!("user{i}@example.com")})).collect();
        let body = json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": values}]});
        let bytes = body.to_string().into_bytes();
        let started = Instant::now();
        let parsed = lifecycle_scim::body::parse(&bytes).unwrap();
        let ops =
            lifecycle_scim::patch::parse_request_with(&parsed, lifecycle_scim::patch::MAX_GROUP_ELEMENTS).unwrap();
        let w = f.scim().update_group_answering(&sales, Change::Patch(ops), None, false).await.unwrap();
        let answered = started.elapsed();
        assert_eq!(w.events, 0);
        println!(
            "BENCH {backend:?} PATCH {n} members ({} bytes): answered in {:.0} ms",
            bytes.len(),
            answered.as_secs_f64() * 1000.0
        );
        // The drain rate, once (it does not depend on the push's size).
        if n == 20_000 {
            let started = Instant::now();
            assert_eq!(f.drain("bench").await, n);
            let drained = started.elapsed();
            println!(
                "BENCH {backend:?} drained {n} events in {:.1} s = {:.0} events/s",
                drained.as_secs_f64(),
                n as f64 / drained.as_secs_f64()
            );
        }
    }
    let n = 50_000;
    let f = start(backend).await;
    f.seed_users(n).await;
    let sales = f.new_group("Sales").await;
    let members: Vec<Value> =
        (0..n).map(|i| json!({"value": uid(i), "display": format!("user{i}@example.com")})).collect();
    let body = json!({"schemas": [lifecycle_scim::GROUP_SCHEMA], "displayName": "Sales", "members": members});
    let bytes = body.to_string().into_bytes();
    let started = Instant::now();
    let parsed = lifecycle_scim::body::parse(&bytes).unwrap();
    let w = f.scim().update_group(&sales, Change::Replace(parsed), None).await.unwrap();
    let answered = started.elapsed();
    assert_eq!(w.events, 0);
    println!(
        "BENCH {backend:?} PUT {n} members ({} bytes): answered in {:.0} ms (members read back)",
        bytes.len(),
        answered.as_secs_f64() * 1000.0
    );
}

mod bench {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: run in release (see super::bench)"]
    async fn sqlite() {
        super::bench(super::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark: run in release (see super::bench)"]
    async fn postgres() {
        super::bench(super::Backend::Postgres).await
    }
}

lifecycle_store::on_both_databases!(
    a_big_patch_then_a_full_put,
    a_crash_mid_batch_and_a_rerun_make_nothing_twice,
    removals_make_movers_and_leavers
);
