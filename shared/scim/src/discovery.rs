//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4,
//! RFC 7643 §5-7): what this server supports, said truthfully — PATCH and
//! filtering yes (the filters of [`crate::filter`]), weak ETags yes; bulk,
//! sorting and password changes no.

use serde_json::{json, Value};

pub fn service_provider_config(base: &str, max_results: u64) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A static bearer token from lifecycle's [scim] tokens, in the Authorization header",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "description": "A person",
            "schema": crate::USER_SCHEMA,
            "schemaExtensions": [{"schema": crate::ENTERPRISE_USER_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "A group of users",
            "schema": crate::GROUP_SCHEMA, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

fn attr(
    name: &str,
    ty: &str,
    multi: bool,
    required: bool,
    mutability: &str,
    uniqueness: &str,
    case_exact: bool,
) -> Value {
    json!({
        "name": name, "type": ty, "multiValued": multi, "required": required, "caseExact": case_exact,
        "mutability": mutability, "returned": if name == "password" { "never" } else { "default" },
        "uniqueness": uniqueness, "description": name,
    })
}

fn simple(name: &str, ty: &str) -> Value {
    attr(name, ty, false, false, "readWrite", "none", false)
}

fn complex(name: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, "readWrite", "none", false);
    a["subAttributes"] = Value::Array(subs);
    a
}

fn multi(name: &str) -> Value {
    complex(
        name,
        true,
        vec![
            simple("value", "string"),
            simple("display", "string"),
            simple("type", "string"),
            simple("primary", "boolean"),
        ],
    )
}

fn read_only(mut a: Value) -> Value {
    a["mutability"] = json!("readOnly");
    a
}

pub fn schemas(base: &str) -> Vec<Value> {
    let meta = |id: &str| json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": crate::USER_SCHEMA, "name": "User", "description": "User Account",
        "attributes": [
            attr("userName", "string", false, true, "readWrite", "server", false),
            complex("name", false, ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
                .into_iter().map(|n| simple(n, "string")).collect()),
            simple("displayName", "string"), simple("nickName", "string"), simple("profileUrl", "reference"),
            simple("title", "string"), simple("userType", "string"), simple("preferredLanguage", "string"),
            simple("locale", "string"), simple("timezone", "string"), simple("active", "boolean"),
            attr("password", "string", false, false, "writeOnly", "none", false),
            multi("emails"), multi("phoneNumbers"), multi("ims"), multi("photos"),
            complex("addresses", true, ["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"]
                .into_iter().map(|n| simple(n, "string")).chain([simple("primary", "boolean")]).collect()),
            read_only(multi("groups")),
            multi("entitlements"), multi("roles"), multi("x509Certificates"),
        ],
        "meta": meta(crate::USER_SCHEMA),
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": crate::GROUP_SCHEMA, "name": "Group", "description": "Group",
        "attributes": [
            attr("displayName", "string", false, true, "readWrite", "server", false),
            complex("members", true, vec![
                attr("value", "string", false, false, "immutable", "none", true),
                attr("display", "string", false, false, "readOnly", "none", false),
                attr("type", "string", false, false, "immutable", "none", false),
                attr("$ref", "reference", false, false, "immutable", "none", false),
            ]),
        ],
        "meta": meta(crate::GROUP_SCHEMA),
    });
    let enterprise = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": crate::ENTERPRISE_USER_SCHEMA, "name": "EnterpriseUser", "description": "Enterprise User",
        "attributes": [
            simple("employeeNumber", "string"), simple("costCenter", "string"), simple("organization", "string"),
            simple("division", "string"), simple("department", "string"),
            complex("manager", false, vec![simple("value", "string"), simple("$ref", "reference"), simple("displayName", "string")]),
        ],
        "meta": meta(crate::ENTERPRISE_USER_SCHEMA),
    });
    vec![user, group, enterprise]
}
