//! Unit tests of `operations.rs`.

use super::*;
use axum::http::StatusCode;

fn params(q: &str) -> Params {
    Params::from_uri(&format!("/x?{q}").parse().unwrap()).unwrap()
}

#[test]
fn every_operation_once_and_seventeen_of_them() {
    assert_eq!(OPERATIONS.len(), 17);
    for (i, a) in OPERATIONS.iter().enumerate() {
        assert!(OPERATIONS[i + 1..].iter().all(|b| (a.method, a.route) != (b.method, b.route)), "{}", a.id);
        assert!(OPERATIONS[i + 1..].iter().all(|b| a.id != b.id), "{}", a.id);
    }
}

#[test]
fn queries_are_checked_against_the_definition() {
    let op = find("GET", "/orgs/{org}/members").unwrap();
    assert!(check_query(op, &params("role=admin&per_page=100&page=3&filter=all")).is_ok());
    for bad in ["role=owner", "per_page=101", "per_page=0", "page=0", "page=x", "since=1", "role=all&role=admin"] {
        let e = check_query(op, &params(bad)).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let op = find("GET", "/user").unwrap();
    assert!(check_query(op, &params("per_page=1")).is_err());
}

#[test]
fn bodies_refuse_unknown_fields_types_and_enums() {
    let fields = [("role", Field::Enum(&["admin", "member"])), ("team_ids", Field::IntArray)];
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    assert!(check_body("X", &b(r#"{"role":"admin","team_ids":[1]}"#), extract::Empty::IsObject, &fields).is_ok());
    assert!(check_body("X", &b(""), extract::Empty::IsObject, &fields).is_ok());
    for bad in [r#"{"role":"owner"}"#, r#"{"x":1}"#, r#"{"team_ids":["a"]}"#, "[]"] {
        let e = check_body("X", &Bytes::from(bad), extract::Empty::IsObject, &fields).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let e = check_body("X", &b("{"), extract::Empty::IsObject, &fields).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}
