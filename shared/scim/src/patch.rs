//! PATCH (RFC 7644 §3.5.2) as Okta and Microsoft Entra send it.
//!
//! Accepted beyond the RFC's letter, because these identity providers send it:
//! - `"op"` in any case (`"Replace"`, `"Add"`, `"Remove"`: Entra);
//! - booleans as strings (`"value": "False"`: Entra), made booleans by
//!   [`crate::resource`] when the resource is checked;
//! - an `add` or `replace` without `path` whose value is an object of
//!   attributes, its keys possibly paths themselves (`"name.givenName"`,
//!   `"urn:...:enterprise:2.0:User:department"`: Entra; Okta's `{"active": false}`);
//! - `members` removed with a value list (`{"op":"Remove","path":"members",
//!   "value":[{"value":"id"}]}`: Entra) as well as by filter
//!   (`members[value eq "id"]`: Okta), and a filter that matches nothing is
//!   not an error (the IdP retried: the member is already gone);
//! - `add`/`replace` through a filter that matches nothing
//!   (`emails[type eq "work"].value`) adds the element.
//!
//! Users are patched as JSON (a user is small); a group's `members` are
//! turned into [`MemberChange`]s that the store applies row by row, so that
//! concurrent PATCHes to one group cannot lose a membership.

use crate::ScimError;
use serde_json::{Map, Value};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// An attribute path: `attr`, `attr.sub`, `attr[f eq v]`, `attr[f eq v].sub`,
/// optionally behind an extension schema's URN.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The extension schema the attribute lives in (`None`: the core schema).
    pub schema: Option<String>,
    pub attr: String,
    pub filter: Option<(String, Value)>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<Path>,
    pub value: Option<Value>,
}

/// Extension schemas whose attributes live in an object under their URN.
const EXTENSIONS: [&str; 1] = [crate::ENTERPRISE_USER_SCHEMA];
/// Attributes the client cannot set, ignored when a path-less value names them
/// (Okta repeats `id` in a group's path-less replace).
const READ_ONLY: [&str; 4] = ["id", "meta", "schemas", "groups"];

/// Most operations one PATCH may carry (more: 400 `tooMany`). Okta and
/// Entra send a handful; Entra batches group members a few per operation.
pub const MAX_OPERATIONS: usize = 1000;
/// Most list elements (a multi-valued attribute's values, a group's members)
/// all of one PATCH's operations may carry together (more: 400 `tooMany`).
pub const MAX_ELEMENTS: usize = 10_000;
/// Most list elements of a group's PATCH: its members are stored as rows,
/// in batches, never as one list in memory, and IdPs send groups of tens of
/// thousands (a push, `lifecycle_ops::push`).
pub const MAX_GROUP_ELEMENTS: usize = 100_000;

/// Parses a PatchOp message, at most [`MAX_OPERATIONS`] operations carrying
/// at most [`MAX_ELEMENTS`] list elements.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, ScimError> {
    parse_request_with(body, MAX_ELEMENTS)
}

/// [`parse_request`] with another limit of list elements (a group's, [`MAX_GROUP_ELEMENTS`]).
pub fn parse_request_with(body: &Value, max_elements: usize) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a JSON object"))?;
    let schemas_ok = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(crate::PATCH_OP))));
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!("a PATCH body's schemas must name {}", crate::PATCH_OP)));
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs an Operations array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::bad(
            crate::ScimType::TooMany,
            format!("a PATCH carries at most {MAX_OPERATIONS} operations (this one {}); send several", ops.len()),
        ));
    }
    let elements: usize = ops
        .iter()
        .filter_map(|op| op.as_object().and_then(|o| get_ci(o, "value")))
        .map(|v| match v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.values().map(|x| x.as_array().map_or(1, Vec::len)).sum(),
            _ => 1,
        })
        .sum();
    if elements > max_elements {
        return Err(ScimError::bad(
            crate::ScimType::TooMany,
            format!("a PATCH carries at most {max_elements} values in all (this one {elements}); send several"),
        ));
    }
    ops.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect()
}

fn parse_operation(i: usize, v: &Value) -> Result<Operation, ScimError> {
    let obj = v.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
    let op = match get_ci(obj, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        _ => return Err(ScimError::invalid_syntax(format!("Operations[{i}].op must be add, replace or remove"))),
    };
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s)?),
        Some(_) => return Err(ScimError::invalid_path(format!("Operations[{i}].path must be a string"))),
    };
    let value = get_ci(obj, "value").cloned();
    match (op, &path, &value) {
        (Op::Remove, None, _) => Err(ScimError::no_target(format!("Operations[{i}]: remove needs a path"))),
        (Op::Add | Op::Replace, _, None) => {
            Err(ScimError::invalid_value(format!("Operations[{i}]: {op:?} needs a value").to_lowercase()))
        }
        (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => Err(ScimError::invalid_value(format!(
            "Operations[{i}]: without a path the value must be an object of attributes"
        ))),
        _ => Ok(Operation { op, path, value }),
    }
}

/// Parses an attribute path (RFC 7644 §3.5.2, `PATH` in its ABNF, with a
/// value filter of one `eq` comparison).
pub fn parse_path(s: &str) -> Result<Path, ScimError> {
    let bad = || ScimError::invalid_path(format!("unsupported path {s:?}"));
    let s = s.trim();
    let mut schema = None;
    let mut rest = s;
    if s.len() >= 4 && s[..4].eq_ignore_ascii_case("urn:") {
        let core =
            [crate::USER_SCHEMA, crate::GROUP_SCHEMA].into_iter().find_map(|u| strip_prefix_ci(s, u).map(|r| (u, r)));
        if let Some((_, r)) = core {
            rest = r.strip_prefix(':').ok_or_else(bad)?;
        } else if let Some(ext) = EXTENSIONS.into_iter().find(|u| strip_prefix_ci(s, u).is_some()) {
            let r = &s[ext.len()..];
            if r.is_empty() {
                // The extension as a whole: a complex attribute named by its URN.
                return Ok(Path { schema: None, attr: ext.to_string(), filter: None, sub: None });
            }
            schema = Some(ext.to_string());
            rest = r.strip_prefix(':').ok_or_else(bad)?;
        } else {
            return Err(ScimError::invalid_path(format!("unknown schema in path {s:?}")));
        }
    }
    let (attr, filter, after) = match rest.find('[') {
        Some(open) => {
            let close = rest.rfind(']').filter(|&c| c > open).ok_or_else(bad)?;
            let filter = parse_value_filter(&rest[open + 1..close]).ok_or_else(bad)?;
            (&rest[..open], Some(filter), &rest[close + 1..])
        }
        None => match rest.split_once('.') {
            Some((a, sub)) => (a, None, &rest[a.len()..][..sub.len() + 1]),
            None => (rest, None, ""),
        },
    };
    let sub = match after {
        "" => None,
        s2 => Some(s2.strip_prefix('.').filter(|x| is_name(x)).ok_or_else(bad)?.to_string()),
    };
    if !is_name(attr) {
        return Err(bad());
    }
    Ok(Path { schema, attr: attr.to_string(), filter, sub })
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// `sub eq <JSON scalar>`.
fn parse_value_filter(s: &str) -> Option<(String, Value)> {
    let s = s.trim();
    let (attr, rest) = s.split_once(' ')?;
    let rest = rest.trim_start();
    let (op, literal) = rest.split_once(' ')?;
    if !op.eq_ignore_ascii_case("eq") || !is_name(attr) {
        return None;
    }
    let value: Value = serde_json::from_str(literal.trim()).ok()?;
    (value.is_string() || value.is_boolean() || value.is_number()).then(|| (attr.to_string(), value))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// The value under `name`, compared case-insensitively (SCIM attribute names are).
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The key as the object already spells it, else `name`.
fn key_ci(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string())
}

/// Applies `ops` in order to a resource held as JSON.
pub fn apply(resource: &mut Map<String, Value>, ops: &[Operation]) -> Result<(), ScimError> {
    for op in ops {
        match &op.path {
            Some(path) => apply_path(resource, op.op, path, op.value.as_ref())?,
            None => {
                let Some(Value::Object(values)) = &op.value else { unreachable!("checked when parsed") };
                for (k, v) in values {
                    if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                        continue;
                    }
                    // Entra writes sub-attributes and extension attributes as keys.
                    let path = parse_path(k)?;
                    apply_path(resource, op.op, &path, Some(v))?;
                }
            }
        }
    }
    Ok(())
}

fn apply_path(resource: &mut Map<String, Value>, op: Op, path: &Path, value: Option<&Value>) -> Result<(), ScimError> {
    if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(&path.attr)) && path.schema.is_none() {
        return Err(ScimError::new(400, Some(crate::ScimType::Mutability), format!("{} cannot be changed", path.attr)));
    }
    let container: &mut Map<String, Value> = match &path.schema {
        None => resource,
        Some(urn) => {
            let key = key_ci(resource, urn);
            if op == Op::Remove && !resource.contains_key(&key) {
                return Ok(());
            }
            let slot = resource.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().expect("made an object above")
        }
    };
    let key = key_ci(container, &path.attr);
    match (&path.filter, &path.sub) {
        (None, None) => apply_whole(container, &key, op, value),
        (None, Some(sub)) => {
            if op == Op::Remove {
                if let Some(Value::Object(o)) = container.get_mut(&key) {
                    let k = key_ci(o, sub);
                    o.remove(&k);
                }
                return Ok(());
            }
            let slot = container.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let o = slot.as_object_mut().expect("made an object above");
            let k = key_ci(o, sub);
            apply_whole(o, &k, op, value)
        }
        (Some((fattr, fvalue)), sub) => {
            let slot = container.entry(key.clone()).or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = slot else {
                return Err(ScimError::invalid_path(format!("{} is not multi-valued", path.attr)));
            };
            let matches =
                |item: &Value| item.as_object().and_then(|o| get_ci(o, fattr)).is_some_and(|v| scalar_eq(v, fvalue));
            match (op, sub) {
                (Op::Remove, None) => items.retain(|i| !matches(i)),
                (Op::Remove, Some(sub)) => {
                    for item in items.iter_mut().filter(|i| matches(i)) {
                        if let Some(o) = item.as_object_mut() {
                            let k = key_ci(o, sub);
                            o.remove(&k);
                        }
                    }
                }
                (Op::Add | Op::Replace, sub) => {
                    let value = value.expect("add and replace carry a value");
                    let mut found = false;
                    for item in items.iter_mut().filter(|i| matches(i)) {
                        found = true;
                        let o = item.as_object_mut().expect("matched an object");
                        set_in(o, sub.as_deref(), value)?;
                    }
                    if !found {
                        let mut o = Map::new();
                        o.insert(fattr.clone(), fvalue.clone());
                        set_in(&mut o, sub.as_deref(), value)?;
                        items.push(Value::Object(o));
                    }
                }
            }
            if items.is_empty() {
                container.remove(&key);
            }
            Ok(())
        }
    }
}

/// Sets `sub` of a multi-valued element, or merges an object into it.
fn set_in(o: &mut Map<String, Value>, sub: Option<&str>, value: &Value) -> Result<(), ScimError> {
    match (sub, value) {
        (Some(sub), v) => {
            let k = key_ci(o, sub);
            o.insert(k, v.clone());
        }
        (None, Value::Object(v)) => {
            for (k, x) in v {
                let k = key_ci(o, k);
                o.insert(k, x.clone());
            }
        }
        (None, _) => return Err(ScimError::invalid_value("a filtered path without a sub-attribute takes an object")),
    }
    Ok(())
}

fn apply_whole(container: &mut Map<String, Value>, key: &str, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
    match op {
        Op::Remove => match (container.get_mut(key), value) {
            // Entra: remove the listed elements (by their "value").
            (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                let gone: HashSet<String> = gone.iter().map(element_key).collect();
                items.retain(|i| !gone.contains(&element_key(i)));
                if items.is_empty() {
                    container.remove(key);
                }
            }
            _ => {
                container.remove(key);
            }
        },
        Op::Add | Op::Replace => {
            let value = value.expect("add and replace carry a value");
            match (container.get_mut(key), value) {
                (Some(Value::Array(items)), Value::Array(new)) if op == Op::Add => {
                    // A set of what is there: linear, however many are added.
                    let mut seen: HashSet<String> = items.iter().map(element_key).collect();
                    for n in new {
                        if seen.insert(element_key(n)) {
                            items.push(n.clone());
                        }
                    }
                }
                (Some(Value::Array(items)), n) if op == Op::Add && !n.is_array() => {
                    if !items.iter().any(|i| same_element(i, n)) {
                        items.push(n.clone());
                    }
                }
                // RFC 7644 §3.5.2.1/.3: sub-attributes given are set, others kept.
                (Some(Value::Object(existing)), Value::Object(new)) => {
                    for (k, v) in new {
                        let k2 = key_ci(existing, k);
                        existing.insert(k2, v.clone());
                    }
                }
                _ => {
                    container.insert(key.to_string(), value.clone());
                }
            }
        }
    }
    Ok(())
}

/// Two elements of a multi-valued attribute are the same when their `value`s are.
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.as_object().and_then(|o| get_ci(o, "value")), b.as_object().and_then(|o| get_ci(o, "value"))) {
        (Some(x), Some(y)) => scalar_eq(x, y),
        _ => a == b,
    }
}

/// What [`same_element`] compares, as a key: two elements are the same
/// exactly when their keys are equal, so a set de-duplicates in linear time.
fn element_key(v: &Value) -> String {
    let mut key = String::new();
    match v.as_object().and_then(|o| get_ci(o, "value")) {
        // As scalar_eq: strings without case, a boolean as its string.
        Some(Value::String(s)) => {
            key.push('s');
            key.push_str(&s.to_ascii_lowercase());
        }
        Some(Value::Bool(b)) => {
            key.push('s');
            key.push_str(if *b { "true" } else { "false" });
        }
        Some(x) => {
            key.push('v');
            canonical(x, &mut key);
        }
        None => {
            key.push('w');
            canonical(v, &mut key);
        }
    }
    key
}

/// JSON with each object's keys sorted: equal values, equal text.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&o[k], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for x in a {
                canonical(x, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Strings compare case-insensitively (`type eq "Work"`), booleans also
/// against Entra's `"True"`.
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Bool(x), Value::String(y)) | (Value::String(y), Value::Bool(x)) => {
            y.eq_ignore_ascii_case(&x.to_string())
        }
        _ => a == b,
    }
}

/// A change to a group's members, applied by the store row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    /// Every member replaced by these (an empty list: all removed).
    Replace(Vec<String>),
}

/// Splits a group's operations into member changes and changes to its other
/// attributes, keeping their order within each.
pub fn split_group_ops(ops: Vec<Operation>) -> Result<(Vec<MemberChange>, Vec<Operation>), ScimError> {
    let mut members = Vec::new();
    let mut rest = Vec::new();
    for op in ops {
        match &op.path {
            Some(p) if p.schema.is_none() && p.attr.eq_ignore_ascii_case("members") => {
                match (&p.filter, &p.sub, op.op) {
                    // members[value eq "x"].display and the like: derived, nothing to store.
                    (_, Some(_), _) => {}
                    (Some((f, v)), None, kind) => {
                        if !f.eq_ignore_ascii_case("value") {
                            return Err(ScimError::invalid_path("members can be filtered by value only"));
                        }
                        let id = v
                            .as_str()
                            .ok_or_else(|| ScimError::invalid_path("members[value eq ...] takes a string"))?
                            .to_string();
                        members.push(match kind {
                            Op::Remove => MemberChange::Remove(vec![id]),
                            Op::Add | Op::Replace => MemberChange::Add(vec![id]),
                        });
                    }
                    (None, None, Op::Remove) => members.push(match &op.value {
                        Some(v) => MemberChange::Remove(member_ids(v)?),
                        None => MemberChange::Replace(Vec::new()),
                    }),
                    (None, None, Op::Add) => members.push(MemberChange::Add(member_ids(op.value.as_ref().unwrap())?)),
                    (None, None, Op::Replace) => {
                        members.push(MemberChange::Replace(member_ids(op.value.as_ref().unwrap())?))
                    }
                }
            }
            None => {
                let Some(Value::Object(values)) = &op.value else { unreachable!("checked when parsed") };
                let mut others = Map::new();
                for (k, v) in values {
                    if k.eq_ignore_ascii_case("members") {
                        let ids = member_ids(v)?;
                        members.push(match op.op {
                            Op::Add => MemberChange::Add(ids),
                            _ => MemberChange::Replace(ids),
                        });
                    } else {
                        others.insert(k.clone(), v.clone());
                    }
                }
                if !others.is_empty() {
                    rest.push(Operation { op: op.op, path: None, value: Some(Value::Object(others)) });
                }
            }
            Some(_) => rest.push(op),
        }
    }
    Ok((members, rest))
}

/// The ids of `[{"value": "id", "display": ...}, ...]` (one object alone too).
pub fn member_ids(v: &Value) -> Result<Vec<String>, ScimError> {
    let one = |m: &Value| {
        m.as_object().and_then(|o| get_ci(o, "value")).and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            ScimError::invalid_value("each member must be an object with a string value (the user's id)")
        })
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(_) => Ok(vec![one(v)?]),
        _ => Err(ScimError::invalid_value("members must be a list of {\"value\": \"<user id>\"}")),
    }
}

#[cfg(test)]
mod tests;
