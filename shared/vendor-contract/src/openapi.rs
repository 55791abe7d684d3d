//! An OpenAPI 3.0 document (JSON or YAML) as a [`Definition`].
//!
//! For an exchange: the operation whose path template and method match (the most literal template
//! wins); its parameters (path-level and operation-level, `$ref`s resolved): no query parameter
//! the operation does not declare, every required one present, each value of the declared type,
//! range and enum, a repeated value only for an array (form style, exploded: OpenAPI's
//! default); the request body against the operation's `requestBody` schema, closed (no field
//! the schema does not declare); the status among the operation's responses (a 2xx must be
//! declared; errors may fall to `default` or be undeclared, as vendors rarely list them all);
//! and the response body against that response's schema, closed too: a simulator must not hand
//! a client a field the vendor does not send.

use crate::operation::{route, verdict};
use crate::schema::{Schemas, Strictness};
use crate::{check_scalar, literal_segments, read, Definition, Exchange, LoadError, Part, Verdict, Violation};
use serde_json::{Map, Value};
use std::path::Path;

/// Options for an odd document.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Object keys compared without regard to case (SCIM: RFC 7643 §2.1 says attribute names
    /// are case-insensitive, and Atlassian's document spells `operations` where RFC 7644
    /// spells `Operations`).
    pub case_insensitive_keys: bool,
    /// Schemas (JSON pointers into the document) that the definition's prose says may be null
    /// although their type does not (Jira's `User.emailAddress`: "Depending on the user's
    /// privacy setting, this may be returned as null").
    pub nullable: Vec<String>,
    /// Schemas (JSON pointers) that stand for any JSON value: a document generated from Java
    /// describes Jackson's `JsonNode` (any JSON) by the getters of its class (`array`,
    /// `nodeType`, ...), which are not fields of any payload.
    pub any_value: Vec<String>,
}

pub struct OpenApi {
    doc: Value,
    schemas: Schemas,
    options: Options,
    /// `(template, method)` pairs, most literal templates first.
    templates: Vec<String>,
}

impl OpenApi {
    /// Reads `path` (`.json`, or `.yaml`/`.yml`).
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        Self::load_with(path, Options::default())
    }

    pub fn load_with(path: &Path, options: Options) -> Result<Self, LoadError> {
        let text = read(path)?;
        let parse = |message: String| LoadError::Parse { path: path.to_owned(), message };
        let doc = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let docs = yaml_rust2::YamlLoader::load_from_str(&text).map_err(|e| parse(e.to_string()))?;
            yaml_to_json(docs.first().ok_or_else(|| parse("an empty YAML document".into()))?)
        } else {
            serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?
        };
        if doc.get("paths").and_then(Value::as_object).is_none() {
            return Err(parse("no `paths`".into()));
        }
        Ok(Self::from_value(doc, options))
    }

    pub fn from_value(mut doc: Value, options: Options) -> Self {
        for pointer in &options.any_value {
            if let Some(schema) = doc.pointer_mut(pointer) {
                *schema = Value::Object(Map::new());
            }
        }
        for pointer in &options.nullable {
            if let Some(Value::Object(schema)) = doc.pointer_mut(pointer) {
                schema.insert("nullable".into(), Value::Bool(true));
            }
        }
        let mut templates: Vec<String> =
            doc["paths"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        templates.sort_by_key(|t| std::cmp::Reverse(literal_segments(t)));
        let schemas = Schemas::new(&doc);
        OpenApi { doc, schemas, options, templates }
    }

    /// Whether the document has `method` at `template` (for tests that name what must exist).
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.doc["paths"].get(template).and_then(|p| p.get(method.to_ascii_lowercase())).is_some()
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
                Some(p) => match self.doc.pointer(p) {
                    Some(t) => v = t,
                    None => return v,
                },
                None => return v,
            }
        }
        v
    }

    /// The pointer of a schema: its `$ref`'s target, or where it stands inline.
    fn schema_pointer(&self, schema: &Value, inline_at: String) -> String {
        match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(p) => p.to_owned(),
            None => inline_at,
        }
    }

    fn parameters(&self, template: &str, method: &str) -> Vec<Value> {
        let path_item = &self.doc["paths"][template];
        let mut params: Vec<Value> = Vec::new();
        for list in [&path_item["parameters"], &path_item[method]["parameters"]] {
            for p in list.as_array().into_iter().flatten() {
                let p = self.resolve(p).clone();
                params.retain(|q: &Value| !(q["name"] == p["name"] && q["in"] == p["in"]));
                params.push(p);
            }
        }
        params
    }

    fn check_params(
        &self,
        ex: &Exchange,
        template: &str,
        method: &str,
        path_values: &[(String, String)],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let params = self.parameters(template, method);
        let declared = |name: &str, place: &str| params.iter().find(|p| p["name"] == name && p["in"] == place);
        for (name, value) in path_values {
            if let Some(p) = declared(name, "path") {
                if let Err(e) = check_scalar(name, value, self.resolve(&p["schema"])) {
                    out.push(Violation::new(Part::PathParam, e));
                }
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &ex.query {
            let Some(p) = declared(name, "query") else {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{name}` is not a query parameter of {method} {template}"),
                ));
                continue;
            };
            let schema = self.resolve(&p["schema"]);
            let is_array = schema["type"] == "array";
            if seen.contains(&name.as_str()) && !is_array {
                out.push(Violation::new(Part::Query, format!("`{name}` is sent more than once but is not an array")));
            }
            seen.push(name);
            let item = if is_array { self.resolve(&schema["items"]) } else { schema };
            // An array sent as one comma-separated value (`explode: false`) is checked item by item.
            let values: Vec<&str> =
                if is_array && p["explode"] == Value::Bool(false) { value.split(',').collect() } else { vec![value] };
            for v in values {
                if let Err(e) = check_scalar(name, v, item) {
                    out.push(Violation::new(Part::Query, e));
                }
            }
        }
        for p in params.iter().filter(|p| p["in"] == "query" && p["required"] == Value::Bool(true)) {
            let name = p["name"].as_str().unwrap_or_default();
            if !ex.query.iter().any(|(k, _)| k == name) {
                out.push(Violation::new(Part::Query, format!("the required query parameter `{name}` is missing")));
            }
        }
        out
    }

    fn check_request_body(&self, ex: &Exchange, template: &str, method: &str) -> Vec<Violation> {
        let op = &self.doc["paths"][template][method];
        let request_body = self.resolve(&op["requestBody"]);
        let Some(body) = &ex.body else {
            return if request_body["required"] == Value::Bool(true) {
                vec![Violation::new(Part::RequestBody, "the operation requires a body and none was sent")]
            } else {
                vec![]
            };
        };
        let Some(content) = request_body["content"].as_object() else {
            return vec![Violation::new(Part::RequestBody, format!("{method} {template} takes no body, one was sent"))];
        };
        let Some((media, schema)) = media_schema(content, ex.header("content-type")) else {
            return vec![Violation::new(
                Part::RequestBody,
                format!(
                    "content type {:?} is not one the operation takes ({:?})",
                    ex.header("content-type"),
                    content.keys().collect::<Vec<_>>()
                ),
            )];
        };
        let pointer = self.schema_pointer(
            schema,
            format!("/paths/{}/{method}/requestBody/content/{}/schema", escape(template), escape(media)),
        );
        let body = self.normalise_keys(body, &pointer);
        self.schemas
            .errors(&pointer, Strictness::Closed, &body)
            .into_iter()
            .map(|e| Violation::new(Part::RequestBody, e))
            .collect()
    }

    fn check_response(&self, ex: &Exchange, template: &str, method: &str) -> Vec<Violation> {
        let responses = &self.doc["paths"][template][method]["responses"];
        let status = ex.status.to_string();
        let range = format!("{}XX", ex.status / 100);
        let declared = responses
            .get(&status)
            .or_else(|| responses.get(&range))
            .or_else(|| responses.get(range.to_lowercase()))
            .or_else(|| responses.get("default"));
        let Some(response) = declared.map(|r| self.resolve(r)) else {
            return if (200..300).contains(&ex.status) {
                vec![Violation::new(Part::Status, format!("{method} {template} does not answer {status}"))]
            } else {
                vec![]
            };
        };
        let (Some(content), Some(body)) = (response["content"].as_object(), &ex.response) else {
            return vec![];
        };
        let key = if declared.is_some() && responses.get(&status).is_some() { status } else { "default".into() };
        let Some((media, schema)) = media_schema(content, None) else { return vec![] };
        let pointer = self.schema_pointer(
            schema,
            format!("/paths/{}/{method}/responses/{key}/content/{}/schema", escape(template), escape(media)),
        );
        let strictness = if (200..300).contains(&ex.status) { Strictness::Closed } else { Strictness::Open };
        let body = self.normalise_keys(body, &pointer);
        self.schemas
            .errors(&pointer, strictness, &body)
            .into_iter()
            .map(|e| Violation::new(Part::ResponseBody, e))
            .collect()
    }

    /// With [`Options::case_insensitive_keys`], the instance's keys spelt as the schema spells them.
    fn normalise_keys(&self, instance: &Value, pointer: &str) -> Value {
        if !self.options.case_insensitive_keys {
            return instance.clone();
        }
        let schema = self.doc.pointer(pointer).unwrap_or(&Value::Null);
        self.respell(schema, instance, 0)
    }

    fn respell(&self, schema: &Value, instance: &Value, depth: usize) -> Value {
        let schema = self.resolve(schema);
        match instance {
            Value::Object(map) if depth < 32 => {
                let props = schema["properties"].as_object();
                let out: Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| {
                        let found = props.and_then(|p| p.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)));
                        match found {
                            Some((name, sub)) => (name.clone(), self.respell(sub, v, depth + 1)),
                            None => (k.clone(), v.clone()),
                        }
                    })
                    .collect();
                Value::Object(out)
            }
            Value::Array(items) if depth < 32 => {
                Value::Array(items.iter().map(|i| self.respell(&schema["items"], i, depth + 1)).collect())
            }
            other => other.clone(),
        }
    }
}

impl Definition for OpenApi {
    fn check(&self, ex: &Exchange) -> Verdict {
        let method = ex.method.to_ascii_lowercase();
        let serves = |t: &String| !self.doc["paths"][t][&method].is_null();
        let (template, values) = route(&self.templates, String::as_str, serves, ex)?;
        let op = &self.doc["paths"][template][&method];
        let mut violations = self.check_params(ex, template, &method, &values);
        violations.extend(self.check_request_body(ex, template, &method));
        violations.extend(self.check_response(ex, template, &method));
        let id = op["operationId"].as_str().map_or_else(|| format!("{} {template}", ex.method), str::to_owned);
        verdict(&id, violations)
    }
}

/// JSON pointer escaping of one reference token.
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The media type's schema: the one the request names, else JSON (any `+json` too).
fn media_schema<'a>(content: &'a Map<String, Value>, wanted: Option<&str>) -> Option<(&'a str, &'a Value)> {
    let wanted = wanted.map(|w| w.split(';').next().unwrap_or(w).trim().to_ascii_lowercase());
    let pick =
        |pred: &dyn Fn(&str) -> bool| content.iter().find(|(k, _)| pred(k)).map(|(k, v)| (k.as_str(), &v["schema"]));
    match wanted {
        Some(w) => pick(&|k: &str| k.eq_ignore_ascii_case(&w)).or_else(|| {
            // `application/json` answered for a `+json` type, and the reverse, are one family.
            if w.ends_with("json") {
                pick(&|k: &str| k.ends_with("json"))
            } else {
                None
            }
        }),
        None => pick(&|k: &str| k.ends_with("json"))
            .or_else(|| content.iter().next().map(|(k, v)| (k.as_str(), &v["schema"]))),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
        }
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        Yaml::Real(r) => r.clone(),
                        _ => String::new(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ex;
    use serde_json::json;

    fn api() -> OpenApi {
        OpenApi::from_value(
            json!({"openapi": "3.0.0", "paths": {
                "/users/{id}": {
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                    "get": {"operationId": "getUser", "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}}},
                    "put": {"operationId": "updateUser",
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"active_flag": {"type": "boolean"}}}}}},
                        "responses": {"200": {"description": "ok"}}}
                },
                "/users/find": {"get": {"operationId": "findUsers",
                    "parameters": [{"name": "term", "in": "query", "required": true, "schema": {"type": "string"}},
                                   {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                                   {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}}],
                    "responses": {"200": {"description": "ok"}}}}
            },
            "components": {"schemas": {"User": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string", "nullable": true}}}}}}),
            Options::default(),
        )
    }

    #[test]
    fn the_most_literal_template_wins_and_parameters_are_checked() {
        let api = api();
        assert_eq!(api.check(&ex("GET", "/users/find", &[("term", "ada")])), Ok("findUsers".into()));
        let e = api.check(&ex("GET", "/users/find", &[("term", "a"), ("start", "0"), ("limit", "501")])).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|v| v.part == Part::Query));
        let e = api.check(&ex("GET", "/users/find", &[])).unwrap_err();
        assert!(e[0].message.contains("required"), "{e:?}");
        assert!(api.check(&ex("GET", "/users/find", &[("term", "a"), ("ids", "1"), ("ids", "2")])).is_ok());
        assert!(api.check(&ex("GET", "/users/find", &[("term", "a"), ("term", "b")])).is_err());
        assert!(api.check(&ex("GET", "/users/x", &[])).unwrap_err()[0].part == Part::PathParam);
    }

    #[test]
    fn unknown_paths_methods_and_bodies_are_named() {
        let api = api();
        assert_eq!(api.check(&ex("GET", "/deals", &[])).unwrap_err()[0].part, Part::Operation);
        assert_eq!(api.check(&ex("DELETE", "/users/1", &[])).unwrap_err()[0].part, Part::Operation);
        let mut put = ex("PUT", "/users/1", &[]);
        put.body = Some(json!({"active_flag": false}));
        assert_eq!(api.check(&put), Ok("updateUser".into()));
        put.body = Some(json!({"active_flag": false, "name": "x"}));
        let e = api.check(&put).unwrap_err();
        assert!(e[0].part == Part::RequestBody && e[0].message.contains("`name`"), "{e:?}");
        put.body = None;
        assert!(api.check(&put).unwrap_err()[0].message.contains("requires a body"));
    }

    #[test]
    fn responses_are_checked_closed_and_an_undeclared_2xx_is_a_violation() {
        let api = api();
        let mut get = ex("GET", "/users/1", &[]);
        get.response = Some(json!({"id": 1, "name": null}));
        assert!(api.check(&get).is_ok());
        get.response = Some(json!({"id": 1, "is_admin": true}));
        assert_eq!(api.check(&get).unwrap_err()[0].part, Part::ResponseBody);
        get.status = 204;
        get.response = None;
        assert_eq!(api.check(&get).unwrap_err()[0].part, Part::Status);
        get.status = 404;
        assert!(api.check(&get).is_ok(), "errors need not be declared");
    }

    #[test]
    fn prose_that_allows_null_is_honoured_where_named() {
        let mut get = ex("GET", "/users/1", &[]);
        get.response = Some(json!({"id": null}));
        assert!(api().check(&get).is_err());
        let mut doc = api().doc;
        doc["paths"]["/users/find"] = json!({});
        let options = Options { nullable: vec!["/components/schemas/User/properties/id".into()], ..Options::default() };
        assert!(OpenApi::from_value(doc, options).check(&get).is_ok());
    }

    #[test]
    fn case_insensitive_keys_respell_before_validation() {
        let doc = json!({"paths": {"/Users/{id}": {"patch": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"operations": {"type": "array", "items": {"type": "object", "properties": {"op": {"type": "string"}}}}}}}}},
            "responses": {"200": {"description": "ok"}}}}}});
        let mut patch = ex("PATCH", "/Users/1", &[]);
        patch.body = Some(json!({"Operations": [{"op": "replace"}]}));
        assert!(OpenApi::from_value(doc.clone(), Options::default()).check(&patch).is_err());
        let options = Options { case_insensitive_keys: true, ..Options::default() };
        assert!(OpenApi::from_value(doc, options).check(&patch).is_ok());
    }
}
