//! The contract suite: every request each client makes, across its workflows, its in-doubt
//! look-ups, its directory reads and its plans, and every answer the simulator gives to them,
//! checked against the vendor's **published** definition (`../shared/vendor-specs/`, read by
//! `lifecycle_vendor_contract`; GitHub's is an exact excerpt kept in this repository, under
//! `tests/vendors/published/github/`), not against our own reading of it.
//!
//! The clients and the simulator were written from the same guides and agreed with each other
//! while 18 of their 51 requests would have been refused by the real vendors. This suite is the
//! third party: a request whose path, method, parameters or body the vendor does not define, or
//! an answer with a field the vendor does not send, fails it, naming the operation and the
//! field. It also checks where each credential goes and the headers of a 429.
//!
//! Each vendor: a joiner of someone new (twice: the second only looks), a mover, a leaver (with
//! something to hand over where the vendor has it), a leaver of someone absent, plans of a joiner
//! and a leaver, the directory, then every write of those runs once more for a new person with
//! the vendor applying it and failing the answer (so each in-doubt look-up is made too), and a
//! 429 on a read.

use crate::common::*;
use lifecycle_vendor_contract::falconpy::FalconPy;
use lifecycle_vendor_contract::gosdk::{GoModels, SpeakeasyOps};
use lifecycle_vendor_contract::openapi::{OpenApi, Options};
use lifecycle_vendor_contract::ts_sdk::TsSdk;
use lifecycle_vendor_contract::{specs_dir, Definition, Exchange};
use lifecycle_vendor_sim::exchanges::Exchange as Recorded;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where one of the simulator's mounts stands in the vendor's own layout, and what judges it.
struct Mount {
    /// The simulator's path prefix for this part of the vendor's API.
    prefix: &'static str,
    /// What to put in front of the rest to get the definition's path.
    vendor_root: &'static str,
    definition: &'static (dyn Definition + Sync),
}

fn spec_file(rel: &str) -> PathBuf {
    specs_dir().expect("../shared/vendor-specs is beside the checkout (or LIFECYCLE_VENDOR_SPECS names it)").join(rel)
}

fn leak<T: Definition + Sync + 'static>(d: T) -> &'static (dyn Definition + Sync) {
    Box::leak(Box::new(d))
}

/// Each vendor's definitions, loaded once for the whole binary.
fn mounts(vendor: VendorKind) -> &'static [Mount] {
    static ALL: OnceLock<BTreeMap<&'static str, Vec<Mount>>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let mut m = BTreeMap::new();
        m.insert("pipedrive", pipedrive_mounts());
        m.insert("crowdstrike", crowdstrike_mounts());
        m.insert("jira", jira_mounts());
        m.insert("calendly", calendly_mounts());
        m.insert("circleci", circleci_mounts());
        m.insert("github", github_mounts());
        m
    });
    &all[vendor.as_str()]
}

fn pipedrive_mounts() -> Vec<Mount> {
    let v1 = OpenApi::load(&spec_file("pipedrive/v1-openapi-2024-02.yaml")).expect("Pipedrive's v1 OpenAPI document");
    let dir = spec_file("pipedrive/client-nodejs-32.2.1");
    let file = |f: &str| dir.join(f);
    let v2 = TsSdk::load(
        &[file("src_versions_v2_api_deals-api.ts")],
        &[
            file("src_versions_v2_models_update-deal-request.ts"),
            file("src_versions_v2_models_get-deals-response-all-of.ts"),
            file("src_versions_v2_models_get-activities-response-all-of-additional-data.ts"),
        ],
    )
    .expect("Pipedrive's v2 deals API from its official SDK")
    // `GetDealsResponse` (`success` beside `GetDealsResponseAllOf`'s `data` and `additional_data`)
    // is not in the copy; `next_cursor` is null on the last page.
    .with_response_model("getDeals", "GetDealsResponseAllOf", &["success"])
    .expect("getDeals' answer")
    .allow_null("GetActivitiesResponseAllOfAdditionalData", "next_cursor")
    .expect("next_cursor");
    let (v1, v2) = (leak(v1), leak(v2));
    vec![
        Mount { prefix: "/pipedrive/api/v1", vendor_root: "", definition: v1 },
        Mount { prefix: "/pipedrive/api/v2", vendor_root: "", definition: v2 },
    ]
}

fn crowdstrike_mounts() -> Vec<Mount> {
    let dir = spec_file("crowdstrike");
    let models = GoModels::load_dir(&dir.join("gofalcon")).expect("gofalcon's models");
    let falcon = FalconPy::load(&[
        dir.join("falconpy__endpoint__user_management.py"),
        dir.join("falconpy__endpoint__oauth2.py"),
    ])
    .expect("FalconPy's endpoint tables");
    let falcon = crowdstrike_models(falcon, &models);
    vec![Mount { prefix: "/crowdstrike", vendor_root: "", definition: leak(falcon) }]
}

fn jira_mounts() -> Vec<Mount> {
    // "Depending on the user's privacy setting, this may be returned as null" (the schemas' own words).
    let hidden = ["User", "UserDetails"].map(|s| format!("/components/schemas/{s}/properties/emailAddress")).to_vec();
    let platform = OpenApi::load_with(
        &spec_file("jira/platform-swagger-v3.v3.json"),
        Options { nullable: hidden, ..Options::default() },
    )
    .expect("Jira's platform OpenAPI document");
    let scim = OpenApi::load_with(
        &spec_file("jira/atlassian-user-provisioning-schema-original.json"),
        Options {
            case_insensitive_keys: true,
            // `OperationForAScimPatch.value` is a Jackson `JsonNode`: any JSON (RFC 7644 §3.5.2).
            any_value: vec!["/components/schemas/JsonNode".into()],
            ..Options::default()
        },
    )
    .expect("Atlassian's user-provisioning OpenAPI document");
    vec![
        Mount { prefix: "/jira/scim", vendor_root: "/scim", definition: leak(scim) },
        Mount { prefix: "/jira", vendor_root: "", definition: leak(platform) },
    ]
}

fn calendly_mounts() -> Vec<Mount> {
    let ops =
        SpeakeasyOps::load_dir(&spec_file("calendly/speakeasy-calendly-go-sdk-2024-04")).expect("Calendly's Go SDK");
    vec![Mount { prefix: "/calendly", vendor_root: "", definition: leak(calendly_rules(ops)) }]
}

fn circleci_mounts() -> Vec<Mount> {
    let api = OpenApi::load(&spec_file("circleci/openapi-v2.json")).expect("CircleCI's API v2 OpenAPI document");
    vec![Mount { prefix: "/circleci/api/v2", vendor_root: "", definition: leak(api) }]
}

/// GitHub's own description (github/rest-api-description, api.github.com.2022-11-28.json), the
/// 17 operations lifecycle uses with every component they reference: an exact excerpt that lives
/// in this repository (its source, commit and licence beside it), not in ../shared/vendor-specs.
fn github_mounts() -> Vec<Mount> {
    let excerpt = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vendors/published/github/api.github.com.2022-11-28.excerpt.json");
    let api = OpenApi::load(&excerpt).expect("GitHub's published description (the excerpt)");
    vec![Mount { prefix: "/github", vendor_root: "", definition: leak(api) }]
}

/// The recorded exchange in the definition's terms, and the definition that judges it.
fn judged(vendor: VendorKind, r: &Recorded) -> Option<(Exchange, &'static (dyn Definition + Sync))> {
    let mount =
        mounts(vendor).iter().find(|m| r.path.starts_with(m.prefix) && r.path[m.prefix.len()..].starts_with('/'))?;
    let ex = Exchange {
        method: r.method.clone(),
        path: format!("{}{}", mount.vendor_root, &r.path[mount.prefix.len()..]),
        query: r.query.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        status: r.status,
        response_headers: r.response_headers.clone(),
        response: r.response.clone(),
    };
    Some((ex, mount.definition))
}

/// What one vendor's exchanges came to.
#[derive(Default)]
struct Report {
    /// Operation ids matched, with how many exchanges each.
    operations: BTreeMap<String, usize>,
    /// Every violation, as `METHOD path?query -> status: why`.
    violations: Vec<String>,
}

fn judge(vendor: VendorKind, exchanges: &[Recorded]) -> Report {
    let mut report = Report::default();
    for r in exchanges {
        let Some((ex, definition)) = judged(vendor, r) else {
            report.violations.push(format!("{} {}: outside every part of {vendor}'s API we know", r.method, r.path));
            continue;
        };
        if let Err(why) = credential_placement(vendor, &ex).and_then(|()| required_headers(vendor, &ex)) {
            report.violations.push(format!("{} -> {}: {why}", ex.line(), ex.status));
        }
        if ex.status == 429 {
            if let Err(why) = rate_limit_headers(vendor, r) {
                report.violations.push(format!("{} -> 429: {why}", ex.line()));
            }
            // A 429 (injected or the budget's) says nothing of the operation's own answers.
            let mut asked = ex.clone();
            asked.status = 0;
            asked.response = None;
            if let Err(v) = definition.check(&asked) {
                let kept: Vec<_> =
                    v.into_iter().filter(|v| v.part != lifecycle_vendor_contract::Part::Status).collect();
                report.violations.extend(kept.iter().map(|v| format!("{} -> 429: {v}", ex.line())));
            }
            continue;
        }
        match definition.check(&ex) {
            Ok(op) => *report.operations.entry(op).or_default() += 1,
            Err(v) => report.violations.extend(v.iter().map(|v| format!("{} -> {}: {v}", ex.line(), ex.status))),
        }
    }
    report
}

/// Where each vendor takes its credential (from its definition and its current docs).
fn credential_placement(vendor: VendorKind, ex: &Exchange) -> Result<(), String> {
    let auth = ex.header("authorization").unwrap_or("");
    let in_query = ex.query.iter().any(|(k, _)| ["api_token", "circle-token", "access_token"].contains(&k.as_str()));
    if in_query {
        return Err("a credential in the query string".into());
    }
    let ok = match vendor {
        // "The API token must be provided in the x-api-token header" (docs-excerpts.md).
        VendorKind::Pipedrive => ex.header("x-api-token").is_some(),
        // OAuth2: the token endpoint takes the client's id and secret in a form body, the rest a bearer token.
        VendorKind::Crowdstrike if ex.path == "/oauth2/token" => auth.is_empty(),
        VendorKind::Crowdstrike | VendorKind::Calendly => auth.starts_with("Bearer "),
        // Jira's REST API: basic auth with an e-mail and an API token; Atlassian's SCIM API: a bearer token.
        VendorKind::Jira if ex.path.starts_with("/scim/") => auth.starts_with("Bearer "),
        VendorKind::Jira => auth.starts_with("Basic "),
        // securitySchemes.api_key_header: `Circle-Token` (the query form is deprecated).
        VendorKind::Circleci => ex.header("circle-token").is_some(),
        // "Authorization: Bearer YOUR-TOKEN" (docs.github.com, "Authenticating to the REST API").
        VendorKind::Github => auth.starts_with("Bearer "),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("the credential is not where {vendor} takes it"))
    }
}

/// Headers a vendor requires besides the credential. GitHub ("Getting started with the REST
/// API"): a `User-Agent` (requests without one are refused), the API version the client was
/// written for, and its media type.
fn required_headers(vendor: VendorKind, ex: &Exchange) -> Result<(), String> {
    if vendor != VendorKind::Github {
        return Ok(());
    }
    if ex.header("user-agent").is_none_or(|v| v.trim().is_empty()) {
        return Err("no User-Agent: GitHub refuses such requests".into());
    }
    if ex.header("x-github-api-version") != Some("2022-11-28") {
        return Err(format!("X-GitHub-Api-Version {:?}, not 2022-11-28", ex.header("x-github-api-version")));
    }
    if ex.header("accept") != Some("application/vnd.github+json") {
        return Err(format!("Accept {:?}, not application/vnd.github+json", ex.header("accept")));
    }
    Ok(())
}

/// A 429 carries the header the vendor documents, with the documented meaning.
fn rate_limit_headers(vendor: VendorKind, r: &Recorded) -> Result<(), String> {
    let number = |name: &str| r.response_header(name).and_then(|v| v.trim().parse::<f64>().ok());
    match vendor {
        // `x-ratelimit-reset`: the seconds left in the window, a small number (not a Unix time).
        VendorKind::Pipedrive => match number("x-ratelimit-reset") {
            Some(s) if (0.0..=86_400.0).contains(&s) => Ok(()),
            other => Err(format!("x-ratelimit-reset should be the seconds remaining, got {other:?}")),
        },
        // `X-RateLimit-RetryAfter`: "retry after this time (as milliseconds since epoch)".
        VendorKind::Crowdstrike => match number("x-ratelimit-retryafter") {
            Some(ms) if ms > 1e12 => Ok(()),
            other => Err(format!("X-RateLimit-RetryAfter should be milliseconds since the epoch, got {other:?}")),
        },
        // Atlassian: `Retry-After` in seconds.
        VendorKind::Jira => number("retry-after").map(|_| ()).ok_or_else(|| "no Retry-After".into()),
        // Calendly: `X-RateLimit-Reset`, the seconds until the limit resets.
        VendorKind::Calendly => match number("x-ratelimit-reset") {
            Some(s) if (0.0..=3_600.0).contains(&s) => Ok(()),
            other => Err(format!("X-RateLimit-Reset should be seconds until reset, got {other:?}")),
        },
        // The definition declares no rate-limit header.
        VendorKind::Circleci => Ok(()),
        // GitHub's 429 is its secondary limit: `retry-after` in seconds; and, as on every
        // authenticated answer, `x-ratelimit-reset` in epoch seconds with `-remaining`.
        VendorKind::Github => {
            match (number("retry-after"), number("x-ratelimit-reset"), number("x-ratelimit-remaining")) {
                (Some(wait), Some(reset), Some(_))
                    if (0.0..=3_600.0).contains(&wait) && (1e9..1e11).contains(&reset) =>
                {
                    Ok(())
                }
                other => Err(format!(
                "want retry-after (seconds), x-ratelimit-reset (epoch seconds) and x-ratelimit-remaining, got {other:?}"
            )),
            }
        }
    }
}

/// What one vendor's run of the suite needs.
struct Case {
    vendor: VendorKind,
    /// The app of a joiner, and of a mover (changing what the joiner asked for), for `email`.
    joiner: fn(&str) -> Value,
    mover: fn(&str) -> Value,
    /// Seeds the tenant so that `email` (who joined) has something a leaver hands over.
    before_leaver: fn(&World, &str),
    /// Extra fields of a leaver event (a successor).
    leaver: fn(&str) -> Value,
    /// Seeds an account for `email` that exists already, a little out of date (other names,
    /// deactivated, a member rather than an invitee): its joiner and leaver take the update paths.
    existing: fn(&World, &str),
    /// Runs particular to the vendor, made after the others (the function seeds what they
    /// need): paths the runs above cannot reach. Their writes are failed in turn too.
    more: fn(&World) -> Vec<Value>,
}

fn login(email: &str) -> String {
    format!("{}-gh", email.split('@').next().unwrap_or(email))
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            vendor: VendorKind::Pipedrive,
            joiner: |e| event("joiner", e, VendorKind::Pipedrive, json!({"role": "Sales Rep"})),
            mover: |e| event("mover", e, VendorKind::Pipedrive, json!({"role": "Sales Manager"})),
            before_leaver: |w, e| {
                w.seed(json!({"deals": [{"title": "Open deal", "owner_email": e}, {"title": "Another", "owner_email": e}]}))
            },
            leaver: |e| {
                let mut ev = event("leaver", e, VendorKind::Pipedrive, json!({}));
                ev["successor_email"] = json!("grace@example.com");
                ev
            },
            existing: |w, e| w.seed(json!({"users": [{"name": "Old Hand", "email": e, "active_flag": false}]})),
            more: |_| Vec::new(),
        },
        Case {
            vendor: VendorKind::Crowdstrike,
            joiner: |e| event("joiner", e, VendorKind::Crowdstrike, json!({"roles": ["falcon_analyst"]})),
            mover: |e| {
                event("mover", e, VendorKind::Crowdstrike, json!({"roles": ["falcon_analyst", "detection_monitor"]}))
            },
            before_leaver: |_, _| {},
            leaver: |e| event("leaver", e, VendorKind::Crowdstrike, json!({})),
            existing: |w, e| {
                w.seed(json!({"users": [{"username": e, "first_name": "Old", "last_name": "Name", "roles": ["detection_monitor"]}]}))
            },
            more: |_| Vec::new(),
        },
        Case {
            vendor: VendorKind::Jira,
            joiner: |e| {
                event("joiner", e, VendorKind::Jira, json!({"products": ["jira-software"], "groups": [JIRA_SOFTWARE]}))
            },
            mover: |e| event("mover", e, VendorKind::Jira, json!({"groups": [JIRA_SOFTWARE, JIRA_PRODUCT]})),
            before_leaver: |_, _| {},
            leaver: |e| event("leaver", e, VendorKind::Jira, json!({})),
            // Managed by the organisation's SCIM directory: its leaver deactivates it there.
            existing: |w, e| {
                w.seed(json!({"users": [{"emailAddress": e, "products": ["jira-software"], "groups": [JIRA_PRODUCT], "scimManaged": true}]}))
            },
            more: |_| Vec::new(),
        },
        Case {
            vendor: VendorKind::Calendly,
            joiner: |e| event("joiner", e, VendorKind::Calendly, json!({})),
            mover: |e| event("mover", e, VendorKind::Calendly, json!({})),
            before_leaver: |_, _| {},
            leaver: |e| event("leaver", e, VendorKind::Calendly, json!({})),
            existing: |w, e| w.seed(json!({"members": [{"email": e, "role": "user"}]})),
            more: |_| Vec::new(),
        },
        Case {
            vendor: VendorKind::Circleci,
            joiner: |e| event("joiner", e, VendorKind::Circleci, json!({"login": login(e)})),
            mover: |e| event("mover", e, VendorKind::Circleci, json!({"login": login(e)})),
            before_leaver: |_, _| {},
            leaver: |e| event("leaver", e, VendorKind::Circleci, json!({"login": login(e)})),
            existing: |w, e| {
                w.seed(
                    json!({"users": [{"login": login(e)}], "memberships": [{"org": "gh/sim-org", "login": login(e)}]}),
                )
            },
            more: |_| Vec::new(),
        },
        Case {
            vendor: VendorKind::Github,
            // The new person's account exists at GitHub (seeded by `suite`): invited by login,
            // with a team; invited once, then only looked up.
            joiner: |e| {
                event(
                    "joiner",
                    e,
                    VendorKind::Github,
                    json!({"login": gh_login(e), "role": "member", "teams": ["platform"]}),
                )
            },
            // Still pending (they have not accepted): a person's task after one look-up. `more`
            // moves an active member.
            mover: |e| {
                event(
                    "mover",
                    e,
                    VendorKind::Github,
                    json!({"login": gh_login(e), "role": "admin", "teams": ["security"]}),
                )
            },
            before_leaver: |_, _| {},
            // A pending invitee by login: cancelled by DELETE membership.
            leaver: |e| event("leaver", e, VendorKind::Github, json!({"login": gh_login(e)})),
            // An owner (not the last) in no team, with an e-mail invitation beside: its joiner
            // demotes them (the owners listed first), adds the team (read first) and takes them
            // out of the other managed team; its leaver removes them and cancels the invitation.
            existing: |w, e| {
                let login = gh_login(e);
                w.seed(json!({"users": [{"login": login}], "members": [{"login": login, "role": "admin"}],
                               "invitations": [{"email": e}]}))
            },
            more: |w| {
                w.seed(json!({
                    "users": [{"login": "morgan-gh"}, {"login": "oscar-gh"}],
                    "invitations": [{"login": "morgan-gh", "teams": ["platform"]}, {"email": "eve@example.com"}],
                    "accept_invitations": ["morgan-gh"],
                    "outside_collaborators": ["oscar-gh"],
                }));
                let gh = |kind: &str, email: &str, app: Value| event(kind, email, VendorKind::Github, app);
                vec![
                    // An active member: role and teams converged (a managed team left).
                    gh(
                        "mover",
                        "morgan@example.com",
                        json!({"login": "morgan-gh", "role": "admin", "teams": ["security"]}),
                    ),
                    // An outside collaborator, removed as the event asks.
                    gh(
                        "leaver",
                        "oscar@example.com",
                        json!({"login": "oscar-gh", "remove_outside_collaborator": true}),
                    ),
                    // By e-mail, without a login: invited by address, then the invitation cancelled by id.
                    gh("joiner", "nora@example.com", json!({"teams": ["security"]})),
                    gh("leaver", "nora@example.com", json!({})),
                    gh("leaver", "eve@example.com", json!({})),
                ]
            },
        },
    ]
}

/// A GitHub login for a test address (`cora.tract@example.com` is `cora-tract-gh`).
fn gh_login(email: &str) -> String {
    format!("{}-gh", email.split('@').next().unwrap_or(email).replace('.', "-"))
}

const JIRA_SOFTWARE: &str = "276f955c-63d7-42c8-9520-92d01dca0625";
const JIRA_PRODUCT: &str = "b8f0c2e4-6a1d-4b3f-9e5c-7a2d4f6b8c01";

/// The writes the simulator applied since mutation `after`, as fault patterns (ids as `*`).
fn writes_since(w: &World, after: usize) -> BTreeSet<(String, String)> {
    let log = w.sim.sim.lock().journal.log(w.sim_vendor());
    log.iter()
        .skip(after)
        .map(|m| {
            let path = m["path"].as_str().unwrap_or_default();
            // GitHub's paths name a person by login (after `memberships` or `outside_collaborators`).
            let segments: Vec<&str> = path.split('/').collect();
            let pattern: Vec<&str> = segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let login = i > 0 && ["memberships", "outside_collaborators"].contains(&segments[i - 1]);
                    if login || s.chars().any(|c| c.is_ascii_digit()) && s.len() > 2 {
                        "*"
                    } else {
                        s
                    }
                })
                .collect();
            (m["method"].as_str().unwrap_or_default().to_owned(), pattern.join("/"))
        })
        .collect()
}

fn mutations(w: &World) -> usize {
    w.sim.sim.lock().journal.log(w.sim_vendor()).len()
}

/// Runs the case's workflows, plans and reads with the recorder on; returns what was recorded.
async fn exercise(w: &World, case: &Case) -> Vec<Recorded> {
    w.sim.sim.record_exchanges(true);
    let who = "cora.tract@example.com";
    let before = mutations(w);
    let joiner = (case.joiner)(who);
    w.start(&joiner).await;
    w.start(&joiner).await;
    w.start(&(case.mover)(who)).await;
    (case.before_leaver)(w, who);
    let leaver = (case.leaver)(who);
    // Plans read the same API the workflows do: the leaver's while there is something to remove.
    let _ = w.connector.plan(&spec(&leaver, case.vendor)).await;
    let _ = w.connector.plan(&spec(&(case.joiner)("plan.joiner@example.com"), case.vendor)).await;
    w.start(&leaver).await;
    w.start(&(case.leaver)("nobody.here@example.com")).await;
    let old = "old.hand@example.com";
    (case.existing)(w, old);
    w.start(&(case.joiner)(old)).await;
    w.start(&(case.leaver)(old)).await;
    for extra in (case.more)(w) {
        w.start(&extra).await;
    }
    let writes = writes_since(w, before);

    for (i, (method, path)) in writes.iter().enumerate() {
        let who = format!("doubt{i}@example.com");
        w.fault(json!({"method": method, "path": path, "kind": "apply_then_fail", "status": 500, "count": 1}));
        let joined = w.start(&(case.joiner)(&who)).await;
        if joined.result.is_err() {
            w.retry(&joined.run_id).await;
        }
        (case.before_leaver)(w, &who);
        let left = w.start(&(case.leaver)(&who)).await;
        if left.result.is_err() {
            w.retry(&left.run_id).await;
        }
    }

    let _ = w.connector.directory(&|_| {}).await;

    // A 429 on a read: the simulator's answer carries the vendor's own headers.
    w.fault(json!({"method": "GET", "kind": "status", "status": 429, "count": 1}));
    w.start(&(case.joiner)("limited@example.com")).await;

    w.sim.sim.record_exchanges(false);
    w.sim.sim.take_exchanges()
}

async fn suite(case: Case) -> Report {
    let w = match case.vendor {
        VendorKind::Jira => World::jira_with_directory().await,
        VendorKind::Calendly => World::unthrottled(VendorKind::Calendly, json!({})).await,
        // Warm, CircleCI's runs ask nothing (its org and token owner cached): cold, each asks.
        VendorKind::Circleci => World::with(VendorKind::Circleci, json!({"catalog_max_age": "0s"})).await,
        // Cold too: every run reads the teams again with If-None-Match (a 304) and `GET /user`.
        // Each person invited by login has a GitHub account.
        VendorKind::Github => {
            let w = World::unthrottled(VendorKind::Github, json!({"catalog_max_age": "0s"})).await;
            let people = ["cora.tract", "plan.joiner", "old.hand", "limited"].map(String::from);
            let doubts = (0..20).map(|i| format!("doubt{i}"));
            let users: Vec<Value> = people
                .into_iter()
                .chain(doubts)
                .filter(|p| p != "old.hand")
                .map(|p| json!({"login": gh_login(&format!("{p}@example.com"))}))
                .collect();
            w.seed(json!({ "users": users }));
            w
        }
        v => World::new(v).await,
    };
    let recorded = exercise(&w, &case).await;
    assert!(recorded.len() > 10, "{}: only {} exchanges recorded", case.vendor, recorded.len());
    judge(case.vendor, &recorded)
}

fn assert_conforms(vendor: VendorKind, report: &Report, must_use: &[&str]) {
    let missing: Vec<_> = must_use.iter().filter(|op| !report.operations.contains_key(**op)).collect();
    assert!(
        report.violations.is_empty() && missing.is_empty(),
        "{vendor}: {} exchange(s) leave the published definition:\n  {}\noperations never exercised: {missing:?}\noperations matched: {:?}",
        report.violations.len(),
        report.violations.join("\n  "),
        report.operations,
    );
}

fn case(vendor: VendorKind) -> Case {
    cases().into_iter().find(|c| c.vendor == vendor).expect("a case for every vendor")
}

#[tokio::test]
async fn pipedrive_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Pipedrive)).await;
    assert_conforms(VendorKind::Pipedrive, &report, PIPEDRIVE_OPS);
}

#[tokio::test]
async fn crowdstrike_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Crowdstrike)).await;
    assert_conforms(VendorKind::Crowdstrike, &report, CROWDSTRIKE_OPS);
}

#[tokio::test]
async fn jira_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Jira)).await;
    assert_conforms(VendorKind::Jira, &report, JIRA_OPS);
}

#[tokio::test]
async fn calendly_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Calendly)).await;
    assert_conforms(VendorKind::Calendly, &report, CALENDLY_OPS);
}

#[tokio::test]
async fn circleci_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Circleci)).await;
    assert_conforms(VendorKind::Circleci, &report, CIRCLECI_OPS);
}

#[tokio::test]
async fn github_requests_and_answers_fit_its_published_definition() {
    let report = suite(case(VendorKind::Github)).await;
    assert_conforms(VendorKind::Github, &report, GITHUB_OPS);
}

/// The operations each vendor's suite must reach (so that a scenario that stops early cannot
/// pass by making fewer requests).
const PIPEDRIVE_OPS: &[&str] = &[
    "findUsersByName",
    "getUser",
    "getUsers",
    "getCurrentUser",
    "addUser",
    "updateUser",
    "getRoles",
    "getUserRoleAssignments",
    "addRoleAssignment",
    // `deleteRoleAssignment` is made only for roles given by hand beside the wanted one
    // (pipedrive.rs covers it); when it is made here it is checked like any other.
    "getDeals",
    "getDeal",
    "updateDeal",
];
const CROWDSTRIKE_OPS: &[&str] = &[
    "oauth2AccessToken",
    "queryUserV1",
    "retrieveUsersGETV1",
    "createUserV1",
    "updateUserV1",
    "deleteUserV1",
    "queriesRolesV1",
    "CombinedUserRolesV2",
    "userRolesActionV1",
];
const JIRA_OPS: &[&str] = &[
    "findUsers",
    "getUser",
    "getCurrentUser",
    "getAllUsers",
    "getUsersFromGroup",
    "createUser",
    "removeUser",
    "getUserGroups",
    "bulkGetGroups",
    "addUserToGroup",
    "removeUserFromGroup",
    "getUsersFromAnActiveDirectory",
    "patchUserInformationInAnActiveDirectory",
];
const CALENDLY_OPS: &[&str] = &[
    "GetMyUserAccount",
    "GetOrganizationMemberships",
    "GetOrganizationsUUIDInvitations",
    "PostOrganizationsUUIDInvitations",
    "RevokeUsersOrganizationInvitation",
    "DeleteOrganizationsUUIDMemberships",
];
const CIRCLECI_OPS: &[&str] = &["getCurrentUser", "getCollaborations"];
/// All 17 (the directory reads the invitations' teams: `managed_teams` is set).
const GITHUB_OPS: &[&str] = &[
    "users/get-authenticated",
    "users/get-by-username",
    "orgs/get-membership-for-user",
    "orgs/set-membership-for-user",
    "orgs/remove-membership-for-user",
    "orgs/list-members",
    "orgs/list-pending-invitations",
    "orgs/create-invitation",
    "orgs/cancel-invitation",
    "orgs/list-invitation-teams",
    "orgs/list-outside-collaborators",
    "orgs/remove-outside-collaborator",
    "teams/list",
    "teams/list-members-in-org",
    "teams/get-membership-for-user-in-org",
    "teams/add-or-update-membership-for-user-in-org",
    "teams/remove-membership-for-user-in-org",
];

/// gofalcon's models of the current user-management operations (CrowdStrike/gofalcon @14348e4,
/// `falcon/models/*.go`, generated from the Falcon swagger; `falcon/client/user_management/*_parameters.go`
/// and `*_responses.go` name each operation's body and answer). vendor-specs holds only the legacy
/// operations' models (`DomainUserCreateRequest` with `firstName`, for `POST /users/entities/users/v1`);
/// the current `createUserV1` takes `DomainCreateUserRequest`, whose names are snake_case. Comments trimmed.
const GOFALCON_CURRENT: &str = r#"
type DomainCreateUserRequest struct {
	Cid string `json:"cid,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName string `json:"last_name,omitempty"`
	Password string `json:"password,omitempty"`
	UID string `json:"uid,omitempty"`
}
type DomainUpdateUserRequest struct {
	FirstName string `json:"first_name,omitempty"`
	LastName string `json:"last_name,omitempty"`
}
type MsaspecIdsRequest struct {
	// Required: true
	Ids []string `json:"ids"`
}
type FlightcontrolapiGrantInput struct {
	Action string `json:"action,omitempty"`
	Cid string `json:"cid,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
	RoleIds []string `json:"role_ids"`
	UUID string `json:"uuid,omitempty"`
}
type MsaAPIError struct {
	// Required: true
	Code *int32 `json:"code"`
	ID string `json:"id,omitempty"`
	// Required: true
	Message *string `json:"message"`
}
type MsaResources struct {
	// Required: true
	ResourcesAffected *int32 `json:"resources_affected"`
}
type MsaMetaInfo struct {
	Pagination *MsaPaging `json:"pagination,omitempty"`
	PoweredBy string `json:"powered_by,omitempty"`
	// Required: true
	QueryTime *float64 `json:"query_time"`
	// Required: true
	TraceID *string `json:"trace_id"`
	Writes *MsaResources `json:"writes,omitempty"`
}
type MsaspecResponseFields struct {
	Errors []*MsaAPIError `json:"errors"`
	// Required: true
	Meta *MsaMetaInfo `json:"meta"`
}
type MsaspecQueryResponse struct {
	Errors []*MsaAPIError `json:"errors"`
	// Required: true
	Meta *MsaMetaInfo `json:"meta"`
	// Required: true
	Resources []string `json:"resources"`
}
type DomainUser struct {
	AccessGrantedAt strfmt.DateTime `json:"access_granted_at,omitempty"`
	Cid string `json:"cid,omitempty"`
	CreatedAt strfmt.DateTime `json:"created_at,omitempty"`
	Factors []string `json:"factors"`
	FirstName string `json:"first_name,omitempty"`
	LastLoginAt strfmt.DateTime `json:"last_login_at,omitempty"`
	LastName string `json:"last_name,omitempty"`
	Status string `json:"status,omitempty"`
	UID string `json:"uid,omitempty"`
	UpdatedAt strfmt.DateTime `json:"updated_at,omitempty"`
	UserType string `json:"user_type,omitempty"`
	UUID string `json:"uuid,omitempty"`
}
type FlightcontrolapiUserResponse struct {
	Errors []*MsaAPIError `json:"errors"`
	// Required: true
	Meta *MsaMetaInfo `json:"meta"`
	// Required: true
	Resources []*DomainUser `json:"resources"`
}
type FlightcontrolapiCombinedUserRolesResourceV2 struct {
	Cid string `json:"cid,omitempty"`
	CidGroupID string `json:"cid_group_id,omitempty"`
	CidGroupName string `json:"cid_group_name,omitempty"`
	ExpiresAt strfmt.DateTime `json:"expires_at,omitempty"`
	GrantType string `json:"grant_type,omitempty"`
	ParentCid string `json:"parent_cid,omitempty"`
	// Required: true
	RoleID *string `json:"role_id"`
	RoleName string `json:"role_name,omitempty"`
	UserGroupID string `json:"user_group_id,omitempty"`
	UserGroupName string `json:"user_group_name,omitempty"`
	UserType string `json:"user_type,omitempty"`
	UUID string `json:"uuid,omitempty"`
}
type FlightcontrolapiCombinedUserRolesResponseV2 struct {
	Errors []*MsaAPIError `json:"errors"`
	// Required: true
	Meta *MsaMetaInfo `json:"meta"`
	// Required: true
	Resources []*FlightcontrolapiCombinedUserRolesResourceV2 `json:"resources"`
}
"#;

/// Each current operation's body and 2xx answer, as gofalcon's parameter and response files bind them.
fn crowdstrike_models(falcon: FalconPy, given: &GoModels) -> FalconPy {
    let mut models = GoModels::from_source("gofalcon@14348e4 (current user-management models)", GOFALCON_CURRENT)
        .expect("the models written here parse");
    // The paging model and the token answer are in vendor-specs (gofalcon/msa_paging.go,
    // domain_access_token_response_v1.go): taken from there, not copied.
    for f in ["msa_paging.go", "domain_access_token_response_v1.go"] {
        let path = spec_file("crowdstrike/gofalcon").join(f);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        models.add_source(f, &text).expect("gofalcon's own file parses");
    }
    assert!(given.has("MsaPaging"), "vendor-specs' gofalcon models are read too");
    let bodies = [
        ("createUserV1", "DomainCreateUserRequest"),
        ("updateUserV1", "DomainUpdateUserRequest"),
        ("retrieveUsersGETV1", "MsaspecIdsRequest"),
        ("userRolesActionV1", "FlightcontrolapiGrantInput"),
    ];
    let answers = [
        ("oauth2AccessToken", 201, "DomainAccessTokenResponseV1"),
        ("queryUserV1", 200, "MsaspecQueryResponse"),
        ("queriesRolesV1", 200, "MsaspecQueryResponse"),
        ("retrieveUsersGETV1", 200, "FlightcontrolapiUserResponse"),
        ("createUserV1", 201, "FlightcontrolapiUserResponse"),
        ("updateUserV1", 200, "FlightcontrolapiUserResponse"),
        ("deleteUserV1", 200, "MsaspecResponseFields"),
        ("CombinedUserRolesV2", 200, "FlightcontrolapiCombinedUserRolesResponseV2"),
        ("userRolesActionV1", 200, "MsaspecResponseFields"),
    ];
    let mut falcon = falcon;
    for (op, model) in bodies {
        falcon = falcon.with_body_model(op, &models, model).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    for (op, status, model) in answers {
        falcon = falcon.with_response_model(op, status, &models, model).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    falcon
}

/// `GET /users/me`'s wrapper: the SDK copy predates that operation's file; developer.calendly.com
/// documents it as `{resource: User}`.
const CALENDLY_USERS_ME: &str = r#"
type GetMyUserAccountResponseBody struct {
	Resource User `json:"resource"`
}
"#;

/// What Calendly documents beyond the 2024 SDK (developer.calendly.com, excerpts in vendor-specs):
/// `count` is an integer from 1 to 100 on both lists (the SDK types it as a float with no bound),
/// memberships may be filtered by `role` (2025-02-28 release), and the pagination links are null on
/// the last page (the SDK types them as plain strings).
fn calendly_rules(ops: SpeakeasyOps) -> SpeakeasyOps {
    let count = json!({"type": "integer", "minimum": 1, "maximum": 100});
    let ops = ops
        .with_models("GET /users/me", CALENDLY_USERS_ME)
        .expect("the wrapper parses")
        .with_operation("GetMyUserAccount", "GET", "/users/me", &[(200, Some("GetMyUserAccountResponseBody"))])
        .expect("GET /users/me is not in the SDK copy");
    let mut ops = ops;
    for op in ["GET /organization_memberships", "GET /organizations/{uuid}/invitations"] {
        ops = ops.with_rule(op, "count", count.clone()).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    ops = ops
        .with_param(
            "GET /organization_memberships",
            "role",
            json!({"type": "string", "enum": ["owner", "admin", "user"]}),
        )
        .expect("role on memberships");
    for field in ["next_page", "next_page_token", "previous_page", "previous_page_token"] {
        ops = ops.allow_null("Pagination", field).unwrap_or_else(|e| panic!("Pagination.{field}: {e}"));
    }
    ops
}
