//! OpenAPI 3.0's schema dialect as JSON Schema (2020-12), and validation with the `jsonschema`
//! crate.
//!
//! OpenAPI 3.0 schemas are *almost* JSON Schema: `nullable: true` (and Swagger's `x-nullable`)
//! instead of a `null` type, boolean `exclusiveMinimum`/`exclusiveMaximum`. [`translate`]
//! rewrites those, in the whole document at once, so that `$ref`s keep pointing where they did.
//!
//! OpenAPI objects accept properties they do not declare; a request we send with a field the
//! vendor does not define would pass unnoticed (a misspelt `first_name` for `firstName` is
//! exactly that). [`Strictness::Closed`] also walks the instance beside its schema and names
//! every property that no schema there declares (through `$ref`, `allOf`, `oneOf` and `anyOf`,
//! whose declared properties are united), unless the schema allows others
//! (`additionalProperties`).

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// Whether objects may carry properties their schema does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strictness {
    /// As the definition says (undeclared properties allowed unless it forbids them).
    Open,
    /// Only declared properties.
    Closed,
}

/// The whole document translated, and validators built on demand per schema pointer.
pub struct Schemas {
    doc: Value,
    cache: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl Schemas {
    /// `document` is an OpenAPI document (or any JSON whose `#/...` pointers the schemas use).
    pub fn new(document: &Value) -> Self {
        Schemas { doc: translate(document), cache: Mutex::new(HashMap::new()) }
    }

    /// Every way `instance` leaves the schema at JSON pointer `pointer` (e.g.
    /// `/components/schemas/User`), each as `at <instance path>: <why>`.
    pub fn errors(&self, pointer: &str, strictness: Strictness, instance: &Value) -> Vec<String> {
        let validator = match self.validator(pointer) {
            Ok(v) => v,
            Err(e) => return vec![format!("the definition's schema at {pointer} cannot be used: {e}")],
        };
        let mut errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("at {}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if strictness == Strictness::Closed {
            if let Some(schema) = self.doc.pointer(pointer) {
                self.undeclared(schema, instance, "", &mut errors, 0);
            }
        }
        errors
    }

    /// `$ref` followed (to a depth that no sane document needs more of).
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
                Some(pointer) => match self.doc.pointer(pointer) {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    /// The schema and every `allOf`/`oneOf`/`anyOf` branch under it, resolved.
    fn branches<'a>(&'a self, schema: &'a Value, out: &mut Vec<&'a Value>) {
        let schema = self.resolve(schema);
        out.push(schema);
        for key in ["allOf", "oneOf", "anyOf"] {
            for branch in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                self.branches(branch, out);
            }
        }
    }

    fn undeclared(&self, schema: &Value, instance: &Value, at: &str, errors: &mut Vec<String>, depth: usize) {
        if depth > 64 {
            return;
        }
        let mut all = Vec::new();
        self.branches(schema, &mut all);
        match instance {
            Value::Object(map) => {
                let open =
                    all.iter().any(|s| matches!(s.get("additionalProperties"), Some(v) if v != &Value::Bool(false)));
                let declares = all.iter().any(|s| s.get("properties").is_some());
                for (key, value) in map {
                    let declared = all.iter().find_map(|s| s.get("properties").and_then(|p| p.get(key)));
                    match declared {
                        Some(sub) => self.undeclared(sub, value, &format!("{at}/{key}"), errors, depth + 1),
                        None if open => {
                            if let Some(extra) =
                                all.iter().find_map(|s| s.get("additionalProperties").filter(|v| v.is_object()))
                            {
                                self.undeclared(extra, value, &format!("{at}/{key}"), errors, depth + 1);
                            }
                        }
                        None if declares => errors.push(format!(
                            "at {}: `{key}` is not a property the definition declares here",
                            if at.is_empty() { "/" } else { at }
                        )),
                        // A schema that declares no properties at all (`type: object` alone) says nothing.
                        None => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = all.iter().find_map(|s| s.get("items")) {
                    for (i, item) in items.iter().enumerate() {
                        self.undeclared(item_schema, item, &format!("{at}/{i}"), errors, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    fn validator(&self, pointer: &str) -> Result<std::sync::Arc<jsonschema::Validator>, String> {
        if let Some(v) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(pointer) {
            return Ok(v.clone());
        }
        let doc = &self.doc;
        // The document itself is the root, so its own `#/components/...` references resolve;
        // the root's `$ref` picks the schema wanted. Unknown keywords (`paths`, `info`) are
        // ignored by JSON Schema.
        let mut root = Map::new();
        root.insert("$ref".into(), Value::String(format!("#{pointer}")));
        for key in ["components", "definitions"] {
            if let Some(v) = doc.get(key) {
                root.insert(key.into(), v.clone());
            }
        }
        if !pointer.starts_with("/components") && !pointer.starts_with("/definitions") {
            // An inline schema (under `paths`): put it beside the components.
            let inline = doc.pointer(pointer).cloned().ok_or_else(|| format!("no schema at {pointer}"))?;
            root.insert("$ref".into(), Value::String("#/x-inline".into()));
            root.insert("x-inline".into(), inline);
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&Value::Object(root))
            .map_err(|e| e.to_string())?;
        let validator = std::sync::Arc::new(validator);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// The document with every schema in JSON Schema's terms (see the module's documentation).
pub fn translate(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), translate_child(k, v))).collect();
            let nullable = [out.remove("nullable"), out.remove("x-nullable")]
                .into_iter()
                .flatten()
                .any(|v| v == Value::Bool(true));
            for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
                if let Some(Value::Bool(b)) = out.get(flag).cloned() {
                    out.remove(flag);
                    if b {
                        if let Some(n) = out.remove(bound) {
                            out.insert(flag.into(), n);
                        }
                    }
                }
            }
            if nullable {
                return make_nullable(out);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(translate).collect()),
        other => other.clone(),
    }
}

/// Examples and vendor extensions are data, not schemas: left as they are.
fn translate_child(key: &str, value: &Value) -> Value {
    if key == "example" || key == "examples" || key == "x-codeSamples" || key == "enum" || key == "default" {
        value.clone()
    } else {
        translate(value)
    }
}

fn make_nullable(mut schema: Map<String, Value>) -> Value {
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema.insert("type".into(), Value::Array(vec![Value::String(t), Value::String("null".into())]));
            if let Some(Value::Array(values)) = schema.get_mut("enum") {
                values.push(Value::Null);
            }
            Value::Object(schema)
        }
        _ => {
            let mut any = Map::new();
            any.insert("anyOf".into(), Value::Array(vec![Value::Object(schema), serde_json::json!({"type": "null"})]));
            Value::Object(any)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"components": {"schemas": {
            "User": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string", "nullable": true},
                "group": {"$ref": "#/components/schemas/Group"}
            }},
            "Group": {"type": "object", "properties": {"groupId": {"type": "string", "x-nullable": true}}},
            "Admin": {"allOf": [{"$ref": "#/components/schemas/User"}, {"type": "object", "properties": {"admin": {"type": "boolean"}}}]}
        }}})
    }

    #[test]
    fn nullable_fields_take_null_and_types_still_hold() {
        let s = Schemas::new(&doc());
        assert!(s.errors("/components/schemas/User", Strictness::Open, &json!({"id": 1, "name": null})).is_empty());
        let wrong = s.errors("/components/schemas/User", Strictness::Open, &json!({"id": "1"}));
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].starts_with("at /id"), "{wrong:?}");
        assert!(!s.errors("/components/schemas/User", Strictness::Open, &json!({"name": "a"})).is_empty());
        let g = json!({"id": 1, "group": {"groupId": null}});
        assert!(s.errors("/components/schemas/User", Strictness::Open, &g).is_empty());
    }

    #[test]
    fn closed_objects_refuse_undeclared_properties_through_all_of() {
        let s = Schemas::new(&doc());
        let admin = json!({"id": 1, "admin": true});
        assert!(s.errors("/components/schemas/Admin", Strictness::Closed, &admin).is_empty());
        let typo = json!({"id": 1, "first_name": "A"});
        let errors = s.errors("/components/schemas/User", Strictness::Closed, &typo);
        assert!(errors.iter().any(|e| e.contains("first_name")), "{errors:?}");
        assert!(s.errors("/components/schemas/User", Strictness::Open, &typo).is_empty());
    }
}
