//! SCIM's application logic in process against a real database (SQLite and
//! PostgreSQL): `lifecycle_ops::scim`, without the producer's HTTP. No
//! broker: events wait in the outbox; what is checked is which events were
//! stored, for which vendors.

use lifecycle_ops::scim::{Change, Error};
use lifecycle_scim::filter::{self, Resource};
use lifecycle_scim::list::Page;
use lifecycle_store::testing::Backend;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

/// Sales → Pipedrive "Sales Rep", SOC → CrowdStrike falcon_analyst, everyone → Calendly.
const MAPPING: &str = lifecycle_config::scim::example_mapping();

#[path = "support/scim_fixture.rs"]
mod scim_fixture;
use scim_fixture::Fixture;

async fn start(backend: Backend) -> Fixture {
    scim_fixture::start(backend, MAPPING).await
}

impl Fixture {
    /// (event type, vendors) of every SCIM event, in the order stored.
    async fn events(&self) -> Vec<(String, Vec<String>)> {
        let rows = self
            .db
            .query_all(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT event_type, payload FROM events WHERE source = 'scim' ORDER BY id".to_string(),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap();
                let vendors = payload["apps"].as_object().unwrap().keys().cloned().collect();
                (r.try_get::<String>("", "event_type").unwrap(), vendors)
            })
            .collect()
    }

    async fn new_user(&self, name: &str) -> String {
        self.scim().create_user(&user(name)).await.unwrap().resource.id
    }

    async fn new_group(&self, name: &str) -> String {
        self.scim().create_group(&group(name)).await.unwrap().resource.id
    }

    async fn patch_group(&self, id: &str, ops: Value) -> usize {
        self.scim().update_group(id, patch(ops), None).await.unwrap().events
    }
}

fn user(name: &str) -> Value {
    json!({
        "schemas": [lifecycle_scim::USER_SCHEMA],
        "userName": format!("{name}@example.com"),
        "externalId": format!("ext-{name}"),
        "name": {"givenName": name, "familyName": "Test"},
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "active": true
    })
}

fn group(name: &str) -> Value {
    json!({"schemas": [lifecycle_scim::GROUP_SCHEMA], "displayName": name, "members": []})
}

fn patch(ops: Value) -> Change {
    Change::Patch(
        lifecycle_scim::patch::parse_request(&json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": ops}))
            .unwrap(),
    )
}

fn event(kind: &str, vendors: &[&str]) -> (String, Vec<String>) {
    (kind.to_string(), vendors.iter().map(|v| v.to_string()).collect())
}

async fn a_user_created_replaced_patched_and_deleted_makes_its_events(backend: Backend) {
    let f = start(backend).await;
    let s = f.scim();
    let created = s.create_user(&user("ada")).await.unwrap();
    let id = created.resource.id.clone();
    assert_eq!((created.resource.version, created.events, created.resource.active), (1, 1, true));
    assert_eq!(created.resource.resource["userName"], "ada@example.com");
    // The same body again (an IdP repeating itself): no new version, no event.
    let same = s.update_user(&id, Change::Replace(user("ada")), None).await.unwrap();
    assert_eq!((same.resource.version, same.events), (1, 0));
    // Deactivated: a leaver for what they had.
    let mut inactive = user("ada");
    inactive["active"] = json!(false);
    let w = s.update_user(&id, Change::Replace(inactive), None).await.unwrap();
    assert_eq!((w.resource.version, w.events, w.resource.active), (2, 1, false));
    // Reactivated by PATCH (Entra's string boolean): a joiner again.
    let w =
        s.update_user(&id, patch(json!([{"op": "Replace", "path": "active", "value": "True"}])), None).await.unwrap();
    assert_eq!((w.resource.version, w.events, w.resource.active), (3, 1, true));
    // A stale If-Match is refused and changes nothing.
    let stale = s.update_user(&id, Change::Replace(user("ada")), Some("W/\"1\"")).await.unwrap_err();
    assert!(matches!(stale, Error::Changed { version: 3 }), "{stale:?}");
    assert_eq!(lifecycle_scim::ScimError::from(stale).status, 412);
    assert_eq!(s.delete_user(&id, Some("W/\"3\"")).await.unwrap(), 1);
    assert!(matches!(s.get_user(&id).await.unwrap_err(), Error::NotFound { kind: "User", .. }));
    assert_eq!(
        f.events().await,
        [
            event("joiner", &["calendly"]),
            event("leaver", &["calendly"]),
            event("joiner", &["calendly"]),
            event("leaver", &["calendly"])
        ]
    );
}

async fn a_taken_user_name_is_refused_and_stores_nothing(backend: Backend) {
    let f = start(backend).await;
    let s = f.scim();
    f.new_user("grace").await;
    let mut again = user("grace");
    again["userName"] = json!("GRACE@example.com");
    let e = s.create_user(&again).await.unwrap_err();
    assert!(matches!(e, Error::Taken(_)), "{e:?}");
    assert_eq!(lifecycle_scim::ScimError::from(e).status, 409);
    let e = s.create_group(&group("Sales")).await.and(s.create_group(&group("sales")).await).unwrap_err();
    assert!(matches!(e, Error::Taken(_)), "{e:?}");
    assert_eq!(f.events().await, [event("joiner", &["calendly"])]);
    let users = s.list_users(None, Page::new(None, None, 100)).await.unwrap();
    assert_eq!(users.total, 1);
}

async fn group_membership_gives_and_takes_the_groups_apps(backend: Backend) {
    let f = start(backend).await;
    let s = f.scim();
    let id = f.new_user("linus").await;
    let sales = f.new_group("Sales").await;
    let soc = f.new_group("SOC").await;
    let unmapped = f.new_group("Book club").await;
    assert_eq!(f.patch_group(&sales, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])).await, 1);
    // The same add again: the membership is there already, nothing changes for the person.
    assert_eq!(f.patch_group(&sales, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])).await, 0);
    assert_eq!(f.patch_group(&soc, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])).await, 1);
    assert_eq!(f.patch_group(&unmapped, json!([{"op": "add", "path": "members", "value": [{"value": id}]}])).await, 0);
    let me = s.get_user(&id).await.unwrap();
    let names: Vec<&str> = me.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["Book club", "Sales", "SOC"]);
    let g = s.get_group(&soc, true).await.unwrap();
    assert_eq!(g.members.unwrap().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(s.get_group(&soc, false).await.unwrap().members.is_none());
    let removed = json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]);
    assert_eq!(f.patch_group(&sales, removed).await, 1);
    // Deleting a mapped group: its members lose what it gave.
    assert_eq!(s.delete_group(&soc, None).await.unwrap(), 1);
    assert_eq!(s.delete_group(&unmapped, None).await.unwrap(), 0);
    assert!(s.get_user(&id).await.unwrap().groups.is_empty());
    assert_eq!(
        f.events().await,
        [
            event("joiner", &["calendly"]),
            event("joiner", &["pipedrive"]),
            event("joiner", &["crowdstrike"]),
            event("leaver", &["pipedrive"]),
            event("leaver", &["crowdstrike"]),
        ]
    );
}

async fn lists_filter_and_page_with_each_users_groups(backend: Backend) {
    let f = start(backend).await;
    let s = f.scim();
    let mut ids = Vec::new();
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        ids.push(f.new_user(name).await);
    }
    let sales = f.new_group("Sales").await;
    let soc = f.new_group("SOC").await;
    let members = |ids: &[String]| json!([{"op": "add", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()}]);
    f.patch_group(&sales, members(&ids[..3])).await;
    f.patch_group(&soc, members(&ids[1..2])).await;
    // Two pages of two, and the last of one: each user with the groups it reads alone.
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let page = s.list_users(None, Page::new(Some(start), Some(2), 100)).await.unwrap();
        assert_eq!(page.total, 5);
        for u in page.resources {
            let alone = s.get_user(&u.id).await.unwrap();
            assert_eq!(u.groups, alone.groups, "user {}", u.id);
            seen.push((u.id, u.groups.len()));
        }
    }
    seen.sort();
    let mut expected: Vec<(String, usize)> = ids.iter().cloned().zip([1, 2, 1, 0, 0]).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // Filters narrow; an unknown name matches no one.
    let by_name = filter::parse("userName eq \"U2@example.com\"", Resource::Users).unwrap();
    let found = s.list_users(Some(by_name), Page::new(None, None, 100)).await.unwrap();
    assert_eq!((found.total, found.resources[0].id.as_str()), (1, ids[1].as_str()));
    let by_ext = filter::parse("externalId eq \"ext-u4\"", Resource::Users).unwrap();
    assert_eq!(s.list_users(Some(by_ext), Page::new(None, None, 100)).await.unwrap().resources[0].id, ids[3]);
    let nobody = filter::parse("userName eq \"nobody@example.com\"", Resource::Users).unwrap();
    assert_eq!(s.list_users(Some(nobody), Page::new(None, None, 100)).await.unwrap().total, 0);
    let groups = s.list_groups(None, Page::new(None, None, 100), false).await.unwrap();
    assert_eq!(groups.total, 2);
    assert!(groups.resources.iter().all(|g| g.members.is_none()));
    let by_display = filter::parse("displayName eq \"soc\"", Resource::Groups).unwrap();
    let found = s.list_groups(Some(by_display), Page::new(None, None, 100), true).await.unwrap();
    assert_eq!(found.resources.len(), 1);
    assert_eq!(found.resources[0].members.as_ref().unwrap().len(), 1);
}

async fn a_bulk_upsert_creates_then_replaces_by_external_id(backend: Backend) {
    use lifecycle_ops::scim::bulk::{upsert, Upserted};
    let f = start(backend).await;
    let s = f.scim();
    let (done, w) = upsert(&s, user("maya")).await.unwrap();
    assert_eq!((done, w.events), (Upserted::Created, 1));
    let mut renamed = user("maya");
    renamed["userName"] = json!("maya.new@example.com");
    let (done, again) = upsert(&s, renamed.clone()).await.unwrap();
    assert_eq!(
        (done, again.resource.id.as_str(), again.resource.version),
        (Upserted::Replaced, w.resource.id.as_str(), 2)
    );
    // Done again (a producer that stopped half-way): the same user, nothing new.
    let (_, same) = upsert(&s, renamed).await.unwrap();
    assert_eq!((same.resource.version, same.events), (2, 0));
    assert_eq!(f.events().await.len(), 1);
}

lifecycle_store::on_both_databases!(
    a_user_created_replaced_patched_and_deleted_makes_its_events,
    a_taken_user_name_is_refused_and_stores_nothing,
    group_membership_gives_and_takes_the_groups_apps,
    lists_filter_and_page_with_each_users_groups,
    a_bulk_upsert_creates_then_replaces_by_external_id,
);
