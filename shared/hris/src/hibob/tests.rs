//! Unit tests of `hibob.rs`.

use super::*;

fn hibob(secrets: &[(&str, &str, &str)]) -> HiBob {
    let tenants: Vec<Value> = secrets
        .iter()
        .map(|(name, company, secret)| {
            json!({
                "name": name, "company_id": company, "webhook_secret": secret,
                "service_user_id": "SU", "service_user_token": "T",
            })
        })
        .collect();
    source(&json!({ "tenants": tenants }), Duration::from_secs(5)).unwrap()
}

fn signed(secret: &str, body: &[u8]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("bob-signature", sign(secret.as_bytes(), body).parse().unwrap());
    h
}

const JOINED: &str = r#"{"companyId":637323,"type":"employee.joined","triggeredBy":"system","triggeredAt":"2024-12-26T11:29:14.399997","version":"v2","data":{"employeeId":"3332883894235038486"}}"#;

#[test]
fn the_tenant_whose_secret_signed_the_body_is_the_one_verified() {
    let bob = hibob(&[("acme", "1", "first-secret"), ("globex", "637323", "second-secret")]);
    let v = bob.verify(&signed("second-secret", JOINED.as_bytes()), JOINED.as_bytes(), Utc::now()).unwrap();
    assert_eq!(v.tenant, "globex");
    assert_eq!(bob.company_id("globex"), Some("637323"));
}

#[test]
fn a_changed_byte_a_wrong_secret_or_no_header_is_refused() {
    let bob = hibob(&[("acme", "637323", "secret")]);
    let headers = signed("secret", JOINED.as_bytes());
    let tampered = JOINED.replace("joined", "left_x");
    assert_eq!(bob.verify(&headers, tampered.as_bytes(), Utc::now()), Err(SignatureError::Mismatch));
    let wrong = signed("other", JOINED.as_bytes());
    assert_eq!(bob.verify(&wrong, JOINED.as_bytes(), Utc::now()), Err(SignatureError::Mismatch));
    assert_eq!(
        bob.verify(&http::HeaderMap::new(), JOINED.as_bytes(), Utc::now()),
        Err(SignatureError::Missing(SIGNATURE_HEADER))
    );
    let mut hex_sig = http::HeaderMap::new();
    hex_sig.insert("bob-signature", hex::encode(mac(b"secret", JOINED.as_bytes())).parse().unwrap());
    assert_eq!(bob.verify(&hex_sig, JOINED.as_bytes(), Utc::now()), Err(SignatureError::Malformed(SIGNATURE_HEADER)));
}

#[test]
fn the_v2_envelope_gives_company_employee_kind_time_and_a_stable_key() {
    let d = parse(JOINED.as_bytes()).unwrap();
    assert_eq!(d.company_id, "637323");
    assert_eq!(d.kind, DeliveryKind::Joined);
    assert_eq!(d.type_name, "employee.joined");
    assert_eq!(d.employee_id.as_deref(), Some("3332883894235038486"));
    assert_eq!(d.occurred_at.unwrap().to_rfc3339(), "2024-12-26T11:29:14.399997+00:00");
    // The same envelope with its keys in another order and other spacing is the same delivery.
    let reordered = r#"{ "version":"v2", "data":{"employeeId":"3332883894235038486"}, "type":"employee.joined",
            "triggeredAt":"2024-12-26T11:29:14.399997", "companyId":637323, "triggeredBy":"system" }"#;
    assert_eq!(parse(reordered.as_bytes()).unwrap().key, d.key);
    let later = JOINED.replace("14.399997", "15.000001");
    assert_ne!(parse(later.as_bytes()).unwrap().key, d.key);
}

#[test]
fn each_employee_type_has_its_kind_and_others_are_refused() {
    for (t, kind) in [
        ("employee.created", DeliveryKind::Joined),
        ("employee.activated", DeliveryKind::Joined),
        ("employee.updated", DeliveryKind::Changed),
        ("table.entry.updated", DeliveryKind::Changed),
        ("employee.left", DeliveryKind::Left),
        ("employee.inactivated", DeliveryKind::Left),
        ("employee.deleted", DeliveryKind::Left),
    ] {
        let body = JOINED.replace("employee.joined", t);
        assert_eq!(parse(body.as_bytes()).unwrap().kind, kind, "{t}");
    }
    assert!(parse(JOINED.replace("employee.joined", "timeoff.request.created").as_bytes()).is_err());
    assert!(parse(JOINED.replace(r#","version":"v2""#, "").as_bytes()).is_err());
    assert!(parse(JOINED.replace(r#""employeeId":"3332883894235038486""#, r#""x":1"#).as_bytes()).is_err());
    assert!(parse(JOINED.replace("2024-12-26T11:29:14.399997", "yesterday").as_bytes()).is_err());
}

#[test]
fn both_ping_bodies_are_pings() {
    for body in ["Ping test", "{\"text\":\"Ping test\"}", "{ \"text\": \"Ping test\" }\n"] {
        assert_eq!(parse(body.as_bytes()).unwrap().kind, DeliveryKind::Ping, "{body}");
    }
    assert!(parse(b"Ping tests").is_err());
}

#[test]
fn a_person_is_read_from_machine_and_display_values() {
    let body = json!({
        "id": "3332883894235038486", "email": "ada@example.com", "firstName": "Ada", "surname": "Lovelace",
        "work": { "department": "263", "title": "9876", "site": "1", "startDate": "2027-01-04" },
        "internal": { "status": "Active", "lifecycleStatus": "hired", "terminationDate": null },
        "humanReadable": {
            "work": { "department": "Sales", "title": "Account Executive", "site": "London", "startDate": "04/01/2027" },
            "internal": { "status": "Active", "lifecycleStatus": "Hired" }
        }
    });
    let r = record("x", &body).unwrap();
    assert_eq!(r.employee_id, "3332883894235038486");
    assert_eq!(r.email.as_deref(), Some("ada@example.com"));
    assert_eq!(r.status, EmploymentStatus::Pending);
    assert_eq!(r.department.as_deref(), Some("Sales"));
    assert_eq!(r.job_title.as_deref(), Some("Account Executive"));
    assert_eq!(r.location.as_deref(), Some("London"));
    assert_eq!(r.employment_status.as_deref(), Some("Hired"));
    assert_eq!(r.hire_date, NaiveDate::from_ymd_opt(2027, 1, 4));
    assert_eq!(r.termination_date, None);
    assert_eq!(status(Some("Inactive"), Some("terminated")), EmploymentStatus::Inactive);
    assert_eq!(status(Some("Active"), Some("employed")), EmploymentStatus::Active);
    assert_eq!(status(None, None), EmploymentStatus::Unknown);
}

#[test]
fn config_mistakes_are_refused_at_start_up() {
    let base = json!({ "name": "a", "company_id": 1, "webhook_secret": "s",
        "service_user_id": "u", "service_user_token": "t" });
    let build = |tenants: Value| source(&json!({ "tenants": tenants }), Duration::from_secs(1)).map(|_| ());
    assert!(build(json!([base.clone()])).is_ok());
    assert!(build(json!([])).is_err());
    assert!(build(json!([base.clone(), base.clone()])).is_err());
    let mut unknown = base.clone();
    unknown["api_key"] = json!("x");
    assert!(build(json!([unknown])).is_err());
    let mut both = base.clone();
    both["rate_limit"] = json!({ "per_second": 1, "per_minute": 5 });
    assert!(build(json!([both])).is_err());
    let mut ftp = base;
    ftp["api_url"] = json!("ftp://example.com/v1");
    assert!(build(json!([ftp])).is_err());
}

#[test]
fn person_urls_keep_the_base_path_and_one_segment() {
    let base = parse_api_url("http://127.0.0.1:9/hibob/v1").unwrap();
    assert_eq!(person_url(&base, "123").unwrap().as_str(), "http://127.0.0.1:9/hibob/v1/people/123");
    assert_eq!(person_url(&base, "../x?y").unwrap().as_str(), "http://127.0.0.1:9/hibob/v1/people/..%2Fx%3Fy");
}

#[test]
fn a_429_wait_comes_from_retry_after_or_the_reset() {
    let now = Utc::now();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-ratelimit-reset", (now.timestamp() + 30).to_string().parse().unwrap());
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
    h.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
}
