//! Unit tests of `patch.rs`.

use super::*;
use serde_json::json;

fn patch(resource: Value, body: Value) -> Result<Value, ScimError> {
    let mut r = resource.as_object().unwrap().clone();
    apply(&mut r, &parse_request(&body)?)?;
    Ok(Value::Object(r))
}

fn ops(ops: Value) -> Value {
    json!({"schemas": [crate::PATCH_OP], "Operations": ops})
}

fn ada() -> Value {
    json!({
        "schemas": [crate::USER_SCHEMA],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
        "active": true
    })
}

#[test]
fn adding_and_removing_many_elements_is_linear() {
    // Outside review (issue 25, MEDIUM 4): 25,000 elements took 5 s, pairwise.
    let n = 25_000;
    let have: Vec<Value> = (0..n).map(|i| json!({"value": format!("e{i}@example.com"), "type": "work"})).collect();
    // Half already there (in another case), half new, each new one twice.
    let add: Vec<Value> = (n / 2..n + n / 2)
        .flat_map(|i| [json!({"value": format!("E{i}@EXAMPLE.com")}), json!({"value": format!("e{i}@example.com")})])
        .collect();
    let mut user = ada().as_object().unwrap().clone();
    user.insert("emails".into(), Value::Array(have));
    let start = std::time::Instant::now();
    let path = Some(parse_path("emails").unwrap());
    let add_op = Operation { op: Op::Add, path: path.clone(), value: Some(Value::Array(add)) };
    apply(&mut user, &[add_op]).unwrap();
    assert_eq!(user["emails"].as_array().unwrap().len(), n + n / 2);
    let gone: Vec<Value> = (0..n).map(|i| json!({"value": format!("e{i}@example.com")})).collect();
    apply(&mut user, &[Operation { op: Op::Remove, path, value: Some(Value::Array(gone)) }]).unwrap();
    assert_eq!(user["emails"].as_array().unwrap().len(), n / 2);
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}: de-duplication must be a set");
}

#[test]
fn element_keys_agree_with_same_element() {
    let values = [
        json!({"value": "Ada@example.com"}),
        json!({"value": "ada@EXAMPLE.com", "type": "work"}),
        json!({"value": "ada2@example.com"}),
        json!({"value": true}),
        json!({"value": "True"}),
        json!({"value": false}),
        json!({"value": 1}),
        json!({"value": 1.0}),
        json!({"value": {"a": 1, "b": 2}}),
        json!({"value": {"b": 2, "a": 1}}),
        json!({"type": "work", "x": [1, 2]}),
        json!({"x": [1, 2], "type": "work"}),
        json!({"x": [2, 1], "type": "work"}),
        json!("plain"),
        json!("PLAIN"),
        json!(7),
    ];
    for a in &values {
        for b in &values {
            assert_eq!(element_key(a) == element_key(b), same_element(a, b), "{a} vs {b}");
        }
    }
}

#[test]
fn too_many_operations_or_elements_are_refused() {
    let one = json!({"op": "add", "path": "emails", "value": [{"value": "a@example.com"}]});
    let e = parse_request(&ops(Value::Array(vec![one.clone(); MAX_OPERATIONS + 1]))).unwrap_err();
    assert_eq!((e.status, e.scim_type), (400, Some(crate::ScimType::TooMany)));
    assert!(parse_request(&ops(Value::Array(vec![one; MAX_OPERATIONS]))).is_ok());
    let many: Vec<Value> = (0..=MAX_ELEMENTS).map(|i| json!({"value": format!("u{i}")})).collect();
    let e = parse_request(&ops(json!([{"op": "add", "path": "members", "value": many}]))).unwrap_err();
    assert_eq!((e.status, e.scim_type), (400, Some(crate::ScimType::TooMany)), "{e}");
    let e = parse_request(&ops(json!([{"op": "replace", "value": {"emails": many}}]))).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::ScimType::TooMany));
    let fine: Vec<Value> = (0..MAX_ELEMENTS).map(|i| json!({"value": format!("u{i}")})).collect();
    assert!(parse_request(&ops(json!([{"op": "add", "path": "members", "value": fine}]))).is_ok());
}

#[test]
fn paths() {
    let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!((p.attr.as_str(), p.sub.as_deref()), ("emails", Some("value")));
    assert_eq!(p.filter, Some(("type".into(), json!("work"))));
    let p = parse_path("name.givenName").unwrap();
    assert_eq!((p.attr.as_str(), p.sub.as_deref(), p.filter), ("name", Some("givenName"), None));
    let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department").unwrap();
    assert_eq!((p.schema.as_deref(), p.attr.as_str()), (Some(crate::ENTERPRISE_USER_SCHEMA), "department"));
    let p = parse_path("urn:ietf:params:scim:schemas:core:2.0:User:userName").unwrap();
    assert_eq!((p.schema, p.attr.as_str()), (None, "userName"));
    let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
    assert_eq!(p.filter, Some(("value".into(), json!("2819c223"))));
    for bad in ["", "a b", "emails[type co \"w\"]", "emails[type eq w]", "urn:x:y:z", "name.", "emails[", "1abc"] {
        assert!(parse_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn okta_deactivates_and_reactivates_without_a_path() {
    // developer.okta.com/docs/reference/scim/scim-20: "Update a specific User (PATCH)".
    let off = patch(ada(), ops(json!([{"op": "replace", "value": {"active": false}}]))).unwrap();
    assert_eq!(off["active"], false);
    let on = patch(off, ops(json!([{"op": "replace", "value": {"active": true}}]))).unwrap();
    assert_eq!(on["active"], true);
}

#[test]
fn entra_capitalised_ops_and_string_booleans_pass_through_to_the_resource_check() {
    // learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups: "Disable user".
    let r = patch(ada(), ops(json!([{"op": "Replace", "path": "active", "value": "False"}]))).unwrap();
    assert_eq!(r["active"], "False");
    let user = crate::resource::parse_user(&r).unwrap();
    assert!(!user.active);
    assert_eq!(user.resource["active"], false);
}

#[test]
fn entra_update_user_attributes() {
    // Entra's "Update user [Multi-valued properties]" and "[Single-valued properties]".
    let r = patch(
        ada(),
        ops(json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@example.com"},
            {"op": "Replace", "path": "name.familyName", "value": "King"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+44 20 1234"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
            {"op": "Replace", "path": "userName", "value": "ada.l@example.com"}
        ])),
    )
    .unwrap();
    assert_eq!(r["emails"][0]["value"], "ada.l@example.com");
    assert_eq!(r["emails"][0]["primary"], true);
    assert_eq!(r["name"], json!({"givenName": "Ada", "familyName": "King"}));
    assert_eq!(r["phoneNumbers"], json!([{"type": "mobile", "value": "+44 20 1234"}]));
    assert_eq!(r[crate::ENTERPRISE_USER_SCHEMA]["department"], "Sales");
    assert_eq!(r["userName"], "ada.l@example.com");
}

#[test]
fn entra_path_less_replace_with_paths_as_keys() {
    let r = patch(
        ada(),
        ops(json!([{"op": "Replace", "value": {
            "name.givenName": "Augusta",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "displayName": "Augusta Ada King",
            "id": "ignored: read-only"
        }}])),
    )
    .unwrap();
    assert_eq!(r["name"]["givenName"], "Augusta");
    assert_eq!(r["name"]["familyName"], "Lovelace");
    assert_eq!(r[crate::ENTERPRISE_USER_SCHEMA]["employeeNumber"], "701984");
    assert!(r.get("id").is_none());
}

#[test]
fn remove_and_errors() {
    let r = patch(
        ada(),
        ops(json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "emails[type eq \"work\"]"}])),
    )
    .unwrap();
    assert_eq!(r["name"], json!({"familyName": "Lovelace"}));
    assert!(r.get("emails").is_none());
    let e = patch(ada(), ops(json!([{"op": "remove"}]))).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::ScimType::NoTarget));
    let e = patch(ada(), ops(json!([{"op": "move", "path": "x"}]))).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::ScimType::InvalidSyntax));
    let e = patch(ada(), json!({"Operations": []})).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::ScimType::InvalidSyntax));
    let e = patch(ada(), ops(json!([{"op": "replace", "path": "id", "value": "x"}]))).unwrap_err();
    assert_eq!(e.scim_type, Some(crate::ScimType::Mutability));
}

#[test]
fn okta_group_push() {
    // developer.okta.com/docs/reference/scim/scim-20: "Update a specific Group name" and members.
    let body = ops(json!([
        {"op": "replace", "value": {"id": "abf4dd94", "displayName": "Sales West"}},
        {"op": "add", "path": "members", "value": [{"value": "u1", "display": "ada@example.com"}, {"value": "u2"}]},
        {"op": "remove", "path": "members[value eq \"u3\"]"}
    ]));
    let (members, rest) = split_group_ops(parse_request(&body).unwrap()).unwrap();
    assert_eq!(
        members,
        vec![MemberChange::Add(vec!["u1".into(), "u2".into()]), MemberChange::Remove(vec!["u3".into()])]
    );
    let mut g = json!({"displayName": "Sales"}).as_object().unwrap().clone();
    apply(&mut g, &rest).unwrap();
    assert_eq!(Value::Object(g), json!({"displayName": "Sales West"}));
}

#[test]
fn entra_group_membership() {
    // Entra's "Update Group [Add Members]" / "[Remove Members]".
    let add = ops(json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}]}]));
    let remove = ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}]));
    let rename = ops(json!([{"op": "Replace", "path": "displayName", "value": "SOC"}]));
    assert_eq!(split_group_ops(parse_request(&add).unwrap()).unwrap().0, vec![MemberChange::Add(vec!["u1".into()])]);
    assert_eq!(
        split_group_ops(parse_request(&remove).unwrap()).unwrap().0,
        vec![MemberChange::Remove(vec!["u1".into()])]
    );
    let (m, rest) = split_group_ops(parse_request(&rename).unwrap()).unwrap();
    assert!(m.is_empty());
    assert_eq!(rest.len(), 1);
    // All members replaced, and removed with no value.
    let all = ops(json!([{"op": "replace", "path": "members", "value": []}, {"op": "remove", "path": "members"}]));
    assert_eq!(
        split_group_ops(parse_request(&all).unwrap()).unwrap().0,
        vec![MemberChange::Replace(vec![]), MemberChange::Replace(vec![])]
    );
    let bad = ops(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}]));
    assert!(split_group_ops(parse_request(&bad).unwrap()).is_err());
}
