//! GitHub, as its published definition has it (the excerpt of api.github.com.2022-11-28):
//! every answer checked against the definition's schema, auth, refusals (paths, parameters,
//! bodies, enums, admin-only operations), invitations, the last owner, outside collaborators,
//! teams, `Link` pagination, ETag / 304, the primary and secondary rate limits, faults, seed,
//! state and knobs.

use crate::common::{into_reply, Reply, TestSim};
use lifecycle_vendor_sim::github::{ADMIN_LOGIN, ADMIN_USER_ID, DEFAULT_ADMIN_TOKEN, MEMBER_TOKEN, ORG_ID};
use lifecycle_vendor_sim::Vendor;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EXCERPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vendors/tests/vendors/published/github/api.github.com.2022-11-28.excerpt.json"
);

fn url(sim: &TestSim, path: &str) -> String {
    format!("{}{}", sim.running.base_url(Vendor::GitHub), path)
}

/// A request as a GitHub client sends it: User-Agent, Accept, the API version, a bearer token.
async fn gh(sim: &TestSim, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = sim
        .http
        .request(method, url(sim, path))
        .header("user-agent", "lifecycle-tests")
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request reaches the simulator")).await
}

async fn get(sim: &TestSim, path: &str) -> Reply {
    gh(sim, Method::GET, path, Some(DEFAULT_ADMIN_TOKEN), None).await
}

async fn send(sim: &TestSim, method: Method, path: &str, body: Option<Value>) -> Reply {
    gh(sim, method, path, Some(DEFAULT_ADMIN_TOKEN), body).await
}

// ---------------------------------------------------------------------------------------------
// The definition, as a checker of answers

struct Definition(Value);

impl Definition {
    fn load() -> Self {
        let text = std::fs::read_to_string(EXCERPT).expect("the published excerpt is in the repository");
        Definition(serde_json::from_str(&text).expect("the excerpt is JSON"))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.resolve(self.0.pointer(pointer).unwrap_or_else(|| panic!("no {r}")))
            }
            None => schema,
        }
    }

    /// The 2xx schema of `operation` (method, path template, status).
    fn response(&self, method: &str, path: &str, status: u16) -> &Value {
        let op = &self.0["paths"][path][method.to_lowercase()];
        let resp = self.resolve(&op["responses"][status.to_string()]);
        &resp["content"]["application/json"]["schema"]
    }

    /// Every field is one the schema has, every required one present, enums as listed.
    fn check(&self, schema: &Value, value: &Value, at: &str) {
        let schema = self.resolve(schema);
        if value.is_null() {
            assert!(schema["nullable"] == true || schema.get("type").is_none(), "{at}: null where not nullable");
            return;
        }
        if let Some(options) = schema["oneOf"].as_array() {
            let tag = value["user_view_type"].as_str().expect("discriminator");
            let mapping = &schema["discriminator"]["mapping"][tag];
            let chosen = options.iter().find(|o| o["$ref"] == *mapping).expect("a mapped schema");
            return self.check(chosen, value, at);
        }
        if let Some(values) = schema["enum"].as_array() {
            assert!(values.contains(value), "{at}: {value} not in {values:?}");
        }
        match schema["type"].as_str() {
            Some("object") => {
                let obj = value.as_object().unwrap_or_else(|| panic!("{at}: not an object: {value}"));
                let props = schema["properties"].as_object().expect("properties");
                for req in schema["required"].as_array().into_iter().flatten() {
                    assert!(obj.contains_key(req.as_str().unwrap()), "{at}: required {req} missing");
                }
                for (k, v) in obj {
                    let prop = props.get(k).unwrap_or_else(|| panic!("{at}: {k} is not in the definition"));
                    self.check(prop, v, &format!("{at}.{k}"));
                }
            }
            Some("array") => {
                for (i, item) in value.as_array().expect("an array").iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{i}]"));
                }
            }
            Some("integer") => assert!(value.is_i64() || value.is_u64(), "{at}: {value} is not an integer"),
            Some("string") => assert!(value.is_string(), "{at}: {value} is not a string"),
            Some("boolean") => assert!(value.is_boolean(), "{at}: {value} is not a boolean"),
            _ => {}
        }
    }

    fn conforms(&self, method: &str, path: &str, reply: &Reply) {
        let schema = self.response(method, path, reply.status.as_u16());
        self.check(schema, &reply.body, &format!("{method} {path}"));
    }

    fn error(&self, reply: &Reply) {
        let name = if reply.status == StatusCode::UNPROCESSABLE_ENTITY && reply.body.get("errors").is_some() {
            "validation-error"
        } else {
            "basic-error"
        };
        self.check(&self.0["components"]["schemas"][name], &reply.body, name);
    }
}

// ---------------------------------------------------------------------------------------------
// Auth and refusals

#[tokio::test]
async fn auth_user_agent_and_the_token_owner() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = get(&sim, "/user").await;
    assert_eq!(r.status, StatusCode::OK);
    def.conforms("GET", "/user", &r);
    assert_eq!(r.body["login"], ADMIN_LOGIN);
    assert_eq!(r.body["id"], ADMIN_USER_ID);
    assert_eq!(r.body["user_view_type"], "private");
    assert_eq!(r.headers["x-ratelimit-limit"], "5000");
    assert_eq!(r.headers["x-ratelimit-resource"], "core");
    assert_eq!(r.header_i64("x-ratelimit-used") + r.header_i64("x-ratelimit-remaining"), 5000);
    assert!(r.header_i64("x-ratelimit-reset") > 1_700_000_000, "epoch seconds");

    let r = gh(&sim, Method::GET, "/user", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["message"], "Requires authentication");
    assert_eq!(r.body["status"], "401");
    def.error(&r);
    let r = gh(&sim, Method::GET, "/user", Some("nope"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["message"], "Bad credentials");

    // `token TOKEN` works as well as Bearer.
    let resp = sim
        .http
        .get(url(&sim, "/user"))
        .header("user-agent", "t")
        .header("authorization", format!("token {MEMBER_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // No User-Agent: 403 before anything else.
    let resp = sim.http.get(url(&sim, "/user")).bearer_auth(DEFAULT_ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("User-Agent"), "{body}");

    // Another API version.
    let resp = sim
        .http
        .get(url(&sim, "/user"))
        .header("user-agent", "t")
        .header("x-github-api-version", "2021-01-01")
        .bearer_auth(DEFAULT_ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_by_username_is_a_public_user_and_unknown_paths_are_not_found() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = get(&sim, "/users/Ada-GH").await;
    assert_eq!(r.status, StatusCode::OK);
    def.conforms("GET", "/users/{username}", &r);
    assert_eq!(r.body["id"], 103);
    assert_eq!(r.body["login"], "ada-gh");
    assert_eq!(r.body["user_view_type"], "public");

    let not_found =
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"});
    for (method, path) in [
        (Method::GET, "/users/nobody-here"),
        (Method::GET, "/orgs/sim-org/nothing"),
        (Method::GET, "/orgs/other-org/members"),
        (Method::POST, "/orgs/sim-org/members"),
        (Method::PATCH, "/orgs/sim-org/memberships/grace-gh"),
        (Method::GET, "/repos/sim-org/x"),
    ] {
        let r = gh(&sim, method.clone(), path, Some(DEFAULT_ADMIN_TOKEN), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(r.body, not_found, "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_parameters_bad_enums_and_page_sizes_are_422() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    for path in [
        "/orgs/sim-org/members?role=owner",
        "/orgs/sim-org/members?per_page=101",
        "/orgs/sim-org/members?page=0",
        "/orgs/sim-org/members?since=3",
        "/orgs/sim-org/members?role=all&role=admin",
        "/orgs/sim-org/invitations?role=member",
        "/orgs/sim-org/invitations?invitation_source=ldap",
        "/orgs/sim-org/teams?team_type=secret",
        "/orgs/sim-org/teams/platform/members?role=admin",
        "/orgs/sim-org/outside_collaborators?filter=none",
        "/user?per_page=5",
    ] {
        let r = get(&sim, path).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", r.body);
        assert_eq!(r.body["message"], "Validation Failed");
        assert_eq!(r.body["errors"][0]["code"], "invalid", "{path}");
        def.error(&r);
        assert!(r.headers.get("x-ratelimit-remaining").is_some(), "authenticated answers carry the headers");
    }
    // The 2FA filters are for owners.
    let r = gh(&sim, Method::GET, "/orgs/sim-org/members?filter=2fa_disabled", Some(MEMBER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = get(&sim, "/orgs/sim-org/members?filter=2fa_disabled").await;
    let logins: Vec<&str> = r.body.as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["margaret-gh"]);
}

#[tokio::test]
async fn admin_operations_refuse_a_member_token() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    for (method, path, body) in [
        (Method::PUT, "/orgs/sim-org/memberships/alan-gh", Some(json!({"role": "admin"}))),
        (Method::DELETE, "/orgs/sim-org/memberships/alan-gh", None),
        (Method::GET, "/orgs/sim-org/invitations", None),
        (Method::POST, "/orgs/sim-org/invitations", Some(json!({"invitee_id": 103}))),
        (Method::DELETE, "/orgs/sim-org/invitations/5001", None),
        (Method::GET, "/orgs/sim-org/invitations/5001/teams", None),
        (Method::DELETE, "/orgs/sim-org/outside_collaborators/linus-gh", None),
        (Method::PUT, "/orgs/sim-org/teams/security/memberships/grace-gh", Some(json!({"role": "member"}))),
        (Method::DELETE, "/orgs/sim-org/teams/platform/memberships/alan-gh", None),
    ] {
        let r = gh(&sim, method.clone(), path, Some(MEMBER_TOKEN), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.body["message"].as_str().unwrap().starts_with("You must be an admin to"), "{}", r.body);
        def.error(&r);
    }
    // Reads are a member's.
    for path in ["/orgs/sim-org/members", "/orgs/sim-org/teams", "/orgs/sim-org/memberships/alan-gh"] {
        assert_eq!(gh(&sim, Method::GET, path, Some(MEMBER_TOKEN), None).await.status, StatusCode::OK, "{path}");
    }
    let state = sim.state().await;
    assert_eq!(state["github"]["log"], json!([]), "nothing changed");
}

// ---------------------------------------------------------------------------------------------
// Members

#[tokio::test]
async fn list_members_pages_with_link_and_filters_by_role() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = get(&sim, "/orgs/sim-org/members?role=admin").await;
    assert_eq!(r.status, StatusCode::OK);
    def.conforms("GET", "/orgs/{org}/members", &r);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["login"], ADMIN_LOGIN);
    assert!(r.headers.get("link").is_none(), "one page: no Link");

    // 4 members, 3 per page: page 1 links to 2 (next, last).
    let r = get(&sim, "/orgs/sim-org/members?role=all&per_page=3").await;
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    let link = r.headers["link"].to_str().unwrap().to_owned();
    let base = sim.running.base_url(Vendor::GitHub);
    let next = format!("<{base}/orgs/sim-org/members?role=all&per_page=3&page=2>; rel=\"next\"");
    assert!(link.contains(&next), "{link}");
    assert!(link.contains("rel=\"last\""), "{link}");
    // Follow next as a client does.
    let next_url = link.split(';').next().unwrap().trim_matches(['<', '>']).to_owned();
    let page2 =
        sim.http.get(&next_url).header("user-agent", "t").bearer_auth(DEFAULT_ADMIN_TOKEN).send().await.unwrap();
    let link2 = page2.headers()["link"].to_str().unwrap().to_owned();
    assert!(link2.contains("rel=\"prev\"") && link2.contains("rel=\"first\"") && !link2.contains("rel=\"next\""));
    let page2: Value = page2.json().await.unwrap();
    let logins: Vec<&str> = page2.as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["margaret-gh"]);

    // Billing managers are not members.
    sim.seed(json!({"github": {"members": [{"login": "ada-gh", "role": "billing_manager"}]}})).await;
    let all = get(&sim, "/orgs/sim-org/members?per_page=100").await;
    assert!(all.body.as_array().unwrap().iter().all(|u| u["login"] != "ada-gh"));
    let m = get(&sim, "/orgs/sim-org/memberships/ada-gh").await;
    assert_eq!(m.body["role"], "billing_manager");
    assert_eq!(m.body["state"], "active");
}

#[tokio::test]
async fn get_membership_active_pending_or_404() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let path = "/orgs/{org}/memberships/{username}";
    let r = get(&sim, "/orgs/sim-org/memberships/sim-admin").await;
    def.conforms("GET", path, &r);
    assert_eq!((r.body["state"].as_str(), r.body["role"].as_str()), (Some("active"), Some("admin")));
    assert_eq!(r.body["organization"]["id"], ORG_ID);
    let r = get(&sim, "/orgs/sim-org/memberships/grace-gh").await;
    assert_eq!(r.body["role"], "member");
    let r = get(&sim, "/orgs/sim-org/memberships/ada-gh").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    def.error(&r);

    sim.seed(json!({"github": {"invitations": [{"login": "ada-gh", "role": "admin"}]}})).await;
    let r = get(&sim, "/orgs/sim-org/memberships/ada-gh").await;
    def.conforms("GET", path, &r);
    assert_eq!((r.body["state"].as_str(), r.body["role"].as_str()), (Some("pending"), Some("admin")));
}

#[tokio::test]
async fn set_membership_changes_roles_but_never_demotes_the_last_owner() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let path = "/orgs/{org}/memberships/{username}";
    let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/sim-admin", Some(json!({"role": "member"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["message"], "You cannot demote the last owner of an organization.");
    def.error(&r);

    let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/grace-gh", Some(json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    def.conforms("PUT", path, &r);
    assert_eq!((r.body["state"].as_str(), r.body["role"].as_str()), (Some("active"), Some("admin")));
    // Two owners now: sim-admin may step down.
    let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/sim-admin", Some(json!({"role": "member"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/sim-admin", Some(json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "sim-admin is no owner any more");

    let state = sim.state().await;
    let log: Vec<&str> =
        state["github"]["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(log, ["membership.role", "membership.role"]);
}

#[tokio::test]
async fn set_membership_validates_its_body_and_invites_non_members() {
    let sim = TestSim::start().await;
    for body in [json!({"role": "billing_manager"}), json!({"role": "admin", "teams": [1]}), json!({"role": 1})] {
        let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/alan-gh", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.body["errors"][0]["resource"], "OrganizationMembership");
    }
    let r = send(&sim, Method::PUT, "/orgs/sim-org/memberships/ada-gh", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!((r.body["state"].as_str(), r.body["role"].as_str()), (Some("pending"), Some("member")));
    let invitations = get(&sim, "/orgs/sim-org/invitations").await;
    assert!(invitations.body.as_array().unwrap().iter().any(|i| i["login"] == "ada-gh"));
}

#[tokio::test]
async fn remove_membership_removes_members_cancels_invitees_and_keeps_the_last_owner() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = send(&sim, Method::DELETE, "/orgs/sim-org/memberships/sim-admin", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["message"], "You cannot remove the last owner of an organization.");
    def.error(&r);

    let r = send(&sim, Method::DELETE, "/orgs/sim-org/memberships/Alan-GH", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    assert_eq!(get(&sim, "/orgs/sim-org/memberships/alan-gh").await.status, StatusCode::NOT_FOUND);
    let platform = get(&sim, "/orgs/sim-org/teams/platform/members").await;
    assert!(platform.body.as_array().unwrap().iter().all(|u| u["login"] != "alan-gh"), "off every team");
    assert_eq!(
        send(&sim, Method::DELETE, "/orgs/sim-org/memberships/alan-gh", None).await.status,
        StatusCode::NOT_FOUND
    );

    sim.seed(json!({"github": {"invitations": [{"login": "ada-gh"}]}})).await;
    assert_eq!(
        send(&sim, Method::DELETE, "/orgs/sim-org/memberships/ada-gh", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(&sim, "/orgs/sim-org/memberships/ada-gh").await.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    let log = state["github"]["log"].as_array().unwrap();
    assert_eq!(log[0]["action"], "membership.remove");
    assert_eq!(log[0]["teams_removed"], json!(["platform", "security"]));
    assert_eq!(log[0]["path"], "/orgs/sim-org/memberships/Alan-GH");
    assert_eq!(log[1]["action"], "invitation.cancel");
}

// ---------------------------------------------------------------------------------------------
// Invitations

#[tokio::test]
async fn invitations_by_id_and_by_email_with_teams() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = send(
        &sim,
        Method::POST,
        "/orgs/sim-org/invitations",
        Some(json!({"invitee_id": 103, "role": "direct_member", "team_ids": [11, 13]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    def.conforms("POST", "/orgs/{org}/invitations", &r);
    assert_eq!(r.body["login"], "ada-gh");
    assert_eq!(r.body["email"], Value::Null);
    assert_eq!(r.body["role"], "direct_member");
    assert_eq!(r.body["team_count"], 2);
    assert_eq!(r.body["inviter"]["login"], ADMIN_LOGIN);
    let ada_invitation = r.body["id"].as_i64().unwrap();

    // Pending: the membership, the team membership, the invitation's teams.
    let m = get(&sim, "/orgs/sim-org/memberships/ada-gh").await;
    assert_eq!((m.body["state"].as_str(), m.body["role"].as_str()), (Some("pending"), Some("member")));
    let t = get(&sim, "/orgs/sim-org/teams/platform/memberships/ada-gh").await;
    def.conforms("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}", &t);
    assert_eq!(t.body["state"], "pending");
    let teams = get(&sim, &format!("/orgs/sim-org/invitations/{ada_invitation}/teams")).await;
    def.conforms("GET", "/orgs/{org}/invitations/{invitation_id}/teams", &teams);
    let slugs: Vec<&str> = teams.body.as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["platform", "sales-eng"]);

    // Not twice, not a member.
    let r = send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(json!({"invitee_id": 103}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["code"], "already_exists");
    assert_eq!(r.body["errors"][0]["message"], "A pending invitation already exists");
    let r = send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(json!({"email": "GRACE@example.com"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["code"], "custom");
    assert_eq!(r.body["errors"][0]["message"], "Invitee is already a part of this organization");
    def.error(&r);

    // By e-mail to an address no account has: login null.
    let r = send(
        &sim,
        Method::POST,
        "/orgs/sim-org/invitations",
        Some(json!({"email": "new@example.com", "role": "admin"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["login"], Value::Null);
    assert_eq!(r.body["email"], "new@example.com");
    assert_eq!(r.body["role"], "admin");

    let list = get(&sim, "/orgs/sim-org/invitations?per_page=100").await;
    def.conforms("GET", "/orgs/{org}/invitations", &list);
    let emails: Vec<Value> = list.body.as_array().unwrap().iter().map(|i| i["email"].clone()).collect();
    assert_eq!(emails, [json!("hedy@example.com"), Value::Null, json!("new@example.com")]);
    let admins = get(&sim, "/orgs/sim-org/invitations?role=admin").await;
    assert_eq!(admins.body.as_array().unwrap().len(), 1);
    let scim = get(&sim, "/orgs/sim-org/invitations?invitation_source=scim").await;
    assert_eq!(scim.body, json!([]));

    // Cancel; then it is gone.
    let path = format!("/orgs/sim-org/invitations/{ada_invitation}");
    assert_eq!(send(&sim, Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(send(&sim, Method::DELETE, &path, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&sim, &format!("{path}/teams")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&sim, Method::DELETE, "/orgs/sim-org/invitations/abc", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&sim, "/orgs/sim-org/memberships/ada-gh").await.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    let actions: Vec<&str> =
        state["github"]["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["invitation.create", "invitation.create", "invitation.cancel"]);
    let cancelled = state["github"]["invitations"].as_array().unwrap().iter().find(|i| i["id"] == ada_invitation);
    assert_eq!(cancelled.unwrap()["state"], "cancelled");
}

#[tokio::test]
async fn create_invitation_refuses_bad_bodies() {
    let sim = TestSim::start().await;
    for body in [
        json!({}),
        json!({"invitee_id": 103, "email": "ada@example.com"}),
        json!({"invitee_id": 103, "role": "member"}),
        json!({"invitee_id": 103, "role": "owner"}),
        json!({"invitee_id": "103"}),
        json!({"invitee_id": 99999}),
        json!({"email": "not-an-address"}),
        json!({"invitee_id": 103, "team_ids": [999]}),
        json!({"invitee_id": 103, "teams": ["platform"]}),
        json!([1]),
    ] {
        let r = send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
    }
    let resp = sim
        .http
        .post(url(&sim, "/orgs/sim-org/invitations"))
        .header("user-agent", "t")
        .bearer_auth(DEFAULT_ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // `reinstate` is accepted; the simulator remembers no former role, so it is a member's.
    let r =
        send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(json!({"invitee_id": 103, "role": "reinstate"})))
            .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["role"], "direct_member");
    let state = sim.state().await;
    assert_eq!(state["github"]["log"].as_array().unwrap().len(), 1, "only the valid one changed anything");
}

// ---------------------------------------------------------------------------------------------
// Outside collaborators

#[tokio::test]
async fn outside_collaborators_list_and_remove() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = get(&sim, "/orgs/sim-org/outside_collaborators").await;
    def.conforms("GET", "/orgs/{org}/outside_collaborators", &r);
    assert_eq!(r.body[0]["login"], "linus-gh");

    let r = send(&sim, Method::DELETE, "/orgs/sim-org/outside_collaborators/grace-gh", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body,
        json!({"message": "You cannot specify an organization member to remove as an outside collaborator.",
               "documentation_url": "https://docs.github.com/rest"})
    );
    for _ in 0..2 {
        let r = send(&sim, Method::DELETE, "/orgs/sim-org/outside_collaborators/linus-gh", None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "idempotent");
    }
    assert_eq!(get(&sim, "/orgs/sim-org/outside_collaborators").await.body, json!([]));
    let state = sim.state().await;
    assert_eq!(state["github"]["log"].as_array().unwrap().len(), 1);
    assert_eq!(state["github"]["log"][0]["action"], "outside_collaborator.remove");
}

// ---------------------------------------------------------------------------------------------
// Teams

#[tokio::test]
async fn teams_list_with_etag_and_304_that_costs_nothing() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let r = get(&sim, "/orgs/sim-org/teams?per_page=100").await;
    def.conforms("GET", "/orgs/{org}/teams", &r);
    let teams: Vec<(i64, &str)> =
        r.body.as_array().unwrap().iter().map(|t| (t["id"].as_i64().unwrap(), t["slug"].as_str().unwrap())).collect();
    assert_eq!(teams, [(11, "platform"), (13, "sales-eng"), (12, "security")], "by name");
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let remaining = r.header_i64("x-ratelimit-remaining");

    let conditional = |tag: String| {
        sim.http
            .get(url(&sim, "/orgs/sim-org/teams?per_page=100"))
            .header("user-agent", "t")
            .header("if-none-match", tag)
            .bearer_auth(DEFAULT_ADMIN_TOKEN)
            .send()
    };
    let r = into_reply(conditional(etag.clone()).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert_eq!(r.body, Value::Null);
    assert_eq!(r.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), remaining, "a 304 does not count");

    // A change makes a new ETag.
    sim.seed(json!({"github": {"teams": [{"name": "Data"}]}})).await;
    let r = into_reply(conditional(etag.clone()).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(r.body.as_array().unwrap().len(), 4);
    assert_eq!(get(&sim, "/orgs/sim-org/teams?team_type=enterprise").await.body, json!([]));
}

#[tokio::test]
async fn team_memberships_get_put_delete() {
    let sim = TestSim::start().await;
    let def = Definition::load();
    let members = get(&sim, "/orgs/sim-org/teams/security/members").await;
    def.conforms("GET", "/orgs/{org}/teams/{team_slug}/members", &members);
    assert_eq!(members.body[0]["login"], "alan-gh");
    let maintainers = get(&sim, "/orgs/sim-org/teams/security/members?role=member").await;
    assert_eq!(maintainers.body, json!([]));

    let path = "/orgs/{org}/teams/{team_slug}/memberships/{username}";
    let r = get(&sim, "/orgs/sim-org/teams/security/memberships/alan-gh").await;
    def.conforms("GET", path, &r);
    assert_eq!((r.body["role"].as_str(), r.body["state"].as_str()), (Some("maintainer"), Some("active")));
    let r = get(&sim, "/orgs/sim-org/teams/security/memberships/grace-gh").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, Value::Null, "the definition declares no body");
    let r = get(&sim, "/orgs/sim-org/teams/nope/memberships/grace-gh").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["message"], "Not Found");

    let put = |who: &'static str, body: Option<Value>| {
        let sim = &sim;
        async move { send(sim, Method::PUT, &format!("/orgs/sim-org/teams/security/memberships/{who}"), body).await }
    };
    let r = put("grace-gh", Some(json!({"role": "member"}))).await;
    assert_eq!(r.status, StatusCode::OK);
    def.conforms("PUT", path, &r);
    assert_eq!(put("grace-gh", None).await.status, StatusCode::OK, "idempotent; role defaults to member");
    let r = put("ada-gh", Some(json!({"role": "member"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "not an org member");
    assert_eq!(r.body["errors"][0]["message"], "ada-gh must be an organization member");
    assert_eq!(put("grace-gh", Some(json!({"role": "owner"}))).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(put("grace-gh", Some(json!({"permission": "x"}))).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(put("nobody-here", None).await.status, StatusCode::NOT_FOUND);
    let r = send(&sim, Method::PUT, "/orgs/sim-org/teams/nope/memberships/grace-gh", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let del = "/orgs/sim-org/teams/security/memberships/grace-gh";
    assert_eq!(send(&sim, Method::DELETE, del, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(send(&sim, Method::DELETE, del, None).await.status, StatusCode::NOT_FOUND, "was not in it");

    let state = sim.state().await;
    let actions: Vec<&str> =
        state["github"]["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["team.add", "team.remove"], "the repeated PUT changed nothing");
}

// ---------------------------------------------------------------------------------------------
// Rate limits and faults

#[tokio::test]
async fn the_primary_limit_is_a_403_with_remaining_zero() {
    let sim = TestSim::start().await;
    let config = sim.control(Method::POST, "/_sim/config", Some(json!({"github": {"primary_limit": 3}}))).await;
    assert_eq!(config["github"]["primary_limit"], 3);
    for left in [2, 1, 0] {
        let r = get(&sim, "/orgs/sim-org/teams").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-remaining"), left);
    }
    let r = get(&sim, "/orgs/sim-org/teams").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert_eq!(r.header_i64("x-ratelimit-used"), 3);
    let reset = r.header_i64("x-ratelimit-reset");
    let now = crate::common::now_ms() / 1000;
    assert!(reset > now && reset <= now + 3600, "{reset} vs {now}");
    assert!(r.headers.get("retry-after").is_none());
    assert!(r.body["message"].as_str().unwrap().starts_with("API rate limit exceeded for user ID 1."), "{}", r.body);
    assert_eq!(sim.state().await["github"]["counters"]["rate_limited"], 1, "a rate-limit 403 is counted as one");
    // Another user has their own budget.
    assert_eq!(gh(&sim, Method::GET, "/user", Some(MEMBER_TOKEN), None).await.status, StatusCode::OK);
    // Off: nothing counts.
    sim.control(Method::POST, "/_sim/config", Some(json!({"github": {"rate_limit": {"enabled": false}}}))).await;
    assert_eq!(get(&sim, "/orgs/sim-org/teams").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_secondary_limit_on_writes_is_a_403_with_retry_after() {
    let sim = TestSim::start().await;
    sim.control(
        Method::POST,
        "/_sim/config",
        Some(json!({"github": {"secondary_writes_per_minute": 2, "secondary_retry_after_secs": 7}})),
    )
    .await;
    // The writes' window is the minute: start well inside one.
    if crate::common::now_ms().rem_euclid(60_000) > 55_000 {
        crate::common::align_to_window_start(60_000).await;
    }
    let path = "/orgs/sim-org/teams/sales-eng/memberships/grace-gh";
    for _ in 0..2 {
        assert_eq!(send(&sim, Method::PUT, path, None).await.status, StatusCode::OK);
    }
    assert_eq!(get(&sim, "/user").await.status, StatusCode::OK, "reads are not writes");
    let r = send(&sim, Method::PUT, path, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.header_i64("retry-after"), 7);
    assert!(r.header_i64("x-ratelimit-remaining") > 0, "the primary limit is not the reason");
    assert!(r.body["message"].as_str().unwrap().starts_with("You have exceeded a secondary rate limit"));
    assert_eq!(sim.state().await["github"]["counters"]["rate_limited"], 1, "a rate-limit 403 is counted as one");
}

#[tokio::test]
async fn injected_429_is_the_secondary_answer_and_403_a_plain_forbidden() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "github", "path": "/orgs/*/invitations", "kind": "status", "status": 429})).await;
    let r = send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(json!({"invitee_id": 103}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header_i64("retry-after"), 60);
    assert!(r.body["message"].as_str().unwrap().contains("secondary rate limit"));
    assert!(r.headers.get("x-ratelimit-remaining").is_some());

    sim.fault(json!({"vendor": "github", "path": "/orgs/*/members", "kind": "status", "status": 403})).await;
    let r = get(&sim, "/orgs/sim-org/members").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"message": "Forbidden", "documentation_url": "https://docs.github.com/rest", "status": "403"})
    );
    assert!(r.headers.get("retry-after").is_none());

    // apply_then_fail: the invitation exists though the answer was an error.
    sim.fault(json!({"vendor": "github", "method": "POST", "path": "/orgs/*/invitations", "kind": "apply_then_fail",
                     "status": 502}))
        .await;
    let r = send(&sim, Method::POST, "/orgs/sim-org/invitations", Some(json!({"invitee_id": 103}))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(get(&sim, "/orgs/sim-org/memberships/ada-gh").await.body["state"], "pending");
}

// ---------------------------------------------------------------------------------------------
// Control: seed, state, config

#[tokio::test]
async fn seed_state_and_config() {
    let sim = TestSim::start().await;
    let created = sim
        .seed(json!({"github": {
            "users": [{"login": "kim-gh", "name": "Kim", "email": "kim@example.com", "token": "kim-token"}],
            "members": [{"login": "kim-gh", "role": "admin"}],
            "teams": [{"name": "Data Science", "members": ["kim-gh", {"login": "grace-gh", "role": "maintainer"}]}],
            "invitations": [{"email": "zed@example.com", "teams": ["data-science"]}],
            "outside_collaborators": ["ada-gh"],
            "accept_invitations": [{"email": "hedy@example.com", "login": "hedy-gh", "name": "Hedy Lamarr"}]
        }}))
        .await;
    let github = &created["github"];
    assert_eq!(github["users"][0]["id"], 2001);
    assert_eq!(github["teams"][0]["slug"], "data-science");
    assert_eq!(github["teams"][0]["id"], 101);
    assert_eq!(github["invitations"][0]["id"], 5002);
    assert_eq!(github["accepted"][0]["login"], "hedy-gh");

    // The seeded token works; kim is an owner, so sim-admin is no longer the last one.
    assert_eq!(
        gh(&sim, Method::GET, "/orgs/sim-org/invitations", Some("kim-token"), None).await.status,
        StatusCode::OK
    );
    let hedy = get(&sim, "/orgs/sim-org/teams/security/memberships/hedy-gh").await;
    assert_eq!(hedy.body["state"], "active", "accepting joined the invitation's teams");
    assert_eq!(
        send(&sim, Method::DELETE, "/orgs/sim-org/memberships/sim-admin", None).await.status,
        StatusCode::NO_CONTENT
    );
    // No longer a member, sim-admin's token reads nothing of the org.
    assert_eq!(get(&sim, "/orgs/sim-org/members").await.status, StatusCode::FORBIDDEN);

    let state = sim.state().await;
    let s = &state["github"];
    assert_eq!(s["organization"], json!({"login": "sim-org", "id": ORG_ID}));
    assert!(s["users"].as_array().unwrap().iter().any(|u| u["login"] == "kim-gh" && u["has_token"] == true));
    assert!(s["members"].as_array().unwrap().iter().all(|m| m["login"] != "sim-admin"));
    assert!(s["outside_collaborators"].as_array().unwrap().iter().any(|o| o["login"] == "ada-gh"));
    assert!(s["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["email"] == "zed@example.com" && i["teams"] == json!(["data-science"]) && i["state"] == "pending"));
    let text = serde_json::to_string(&state).unwrap();
    assert!(!text.contains("kim-token") && !text.contains(DEFAULT_ADMIN_TOKEN), "no token in the state");

    for bad in [
        json!({"github": {"users": [{"login": "-bad-"}]}}),
        json!({"github": {"members": [{"login": "nobody"}]}}),
        json!({"github": {"outside_collaborators": ["grace-gh"]}}),
        json!({"github": {"invitations": [{"login": "grace-gh"}]}}),
        json!({"github": {"teams": [{"name": "X", "members": ["ada-gh"]}]}}),
        json!({"github": {"whatever": []}}),
    ] {
        let r = sim.control_raw(Method::POST, "/_sim/seed", Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(
        config["github"],
        json!({"rate_limit": {"enabled": true}, "primary_limit": 5000, "primary_window_secs": 3600,
               "secondary_writes_per_minute": 80, "secondary_retry_after_secs": 60})
    );
    let r = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"github": {"burst": 1}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"github": {"primary_limit": 0}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Reset: the owner and its token survive.
    sim.control(Method::POST, "/_sim/reset", None).await;
    let state = sim.state().await;
    assert_eq!(state["github"]["users"].as_array().unwrap().len(), 1);
    assert_eq!(get(&sim, "/user").await.body["login"], ADMIN_LOGIN);
}

#[test]
fn the_admin_token_flag_parses_beside_the_other_vendors_flags() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: lifecycle_vendor_sim::Config,
    }
    let cli = Cli::try_parse_from(["sim", "--github-admin-token", "other"]).unwrap();
    assert_eq!(cli.config.github.admin_token.expose(), "other");
}
