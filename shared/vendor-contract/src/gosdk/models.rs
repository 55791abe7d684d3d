//! The models of a generated Go SDK ([`GoModels`]), and JSON validated against them.

use super::lex::lex;
use super::source::{generator_of, go_files, parse_file, Declared, Field, GoType, StructDef, TypeDef};
use crate::schema::Strictness;
use crate::{kind, read, shown, LoadError, SetupError, MAX_DEPTH};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The JSON models of a generated Go SDK (see the module's documentation).
#[derive(Clone, Debug, Default)]
pub struct GoModels {
    pub(super) types: BTreeMap<String, Declared>,
    pub(super) enums: BTreeMap<String, Vec<Value>>,
    opaque: BTreeSet<String>,
}

impl GoModels {
    /// Every `.go` file directly in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        Self::load_files(&go_files(dir)?)
    }

    pub fn load_files<P: AsRef<Path>>(files: &[P]) -> Result<Self, LoadError> {
        let mut models = GoModels::default();
        for file in files {
            let path = file.as_ref();
            let text = read(path)?;
            models
                .add(&text, &path.display().to_string())
                .map_err(|message| LoadError::Parse { path: path.to_owned(), message })?;
        }
        Ok(models)
    }

    /// Models from Go source text (`label` names it in messages): a test's fixture, or a model
    /// the vendor documents that the SDK copy lacks.
    pub fn from_source(label: &str, source: &str) -> Result<Self, LoadError> {
        let mut models = GoModels::default();
        models.add_source(label, source)?;
        Ok(models)
    }

    /// More models from Go source text; a type defined twice is an error.
    pub fn add_source(&mut self, label: &str, source: &str) -> Result<(), LoadError> {
        self.add(source, label).map_err(|message| LoadError::Parse { path: PathBuf::from(label), message })
    }

    fn add(&mut self, text: &str, source: &str) -> Result<(), String> {
        parse_file(&lex(text), generator_of(text), source, &mut self.types, &mut self.enums)
    }

    /// Whether a type of that name (struct or named type) is loaded.
    pub fn has(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// The values of a named type's `const` enum, if it has one.
    pub fn enum_values(&self, type_name: &str) -> Option<&[Value]> {
        self.enums.get(type_name).map(Vec::as_slice)
    }

    /// Types that loaded models refer to but that are not loaded themselves (their values are
    /// errors where met, unless [`GoModels::with_opaque_model`] says otherwise).
    pub fn missing_models(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for declared in self.types.values() {
            match &declared.def {
                TypeDef::Struct(def) => self.missing_in_struct(def, &mut out),
                TypeDef::Alias(ty) => self.missing_in(ty, &mut out),
            }
        }
        out
    }

    fn missing_in_struct(&self, def: &StructDef, out: &mut BTreeSet<String>) {
        for ty in def.fields.iter().filter(|f| f.json.is_some()).map(|f| &f.ty).chain(&def.embedded) {
            self.missing_in(ty, out);
        }
    }

    fn missing_in(&self, ty: &GoType, out: &mut BTreeSet<String>) {
        match ty {
            GoType::Pointer(t) | GoType::Slice(t) | GoType::Map(t) => self.missing_in(t, out),
            GoType::Named(n) if !self.types.contains_key(n) && !self.opaque.contains(n) => {
                out.insert(n.clone());
            }
            GoType::Struct(def) => self.missing_in_struct(def, out),
            _ => {}
        }
    }

    /// Accepts any JSON where `type_name` is expected: for a model the loaded ones reference but
    /// that the vendor's files we hold do not contain (gofalcon's `MsaMetaInfo`). A loaded type
    /// cannot be made opaque (that would switch its checks off).
    pub fn with_opaque_model(mut self, type_name: &str) -> Result<Self, SetupError> {
        if self.types.contains_key(type_name) {
            return Err(SetupError::AlreadyDefined(type_name.into()));
        }
        self.opaque.insert(type_name.into());
        Ok(self)
    }

    /// Lets `field` (its JSON name) of `type_name` be null where the Go type cannot say so but the
    /// vendor documents it (Calendly's `pagination.next_page_token`: "null indicates no
    /// additional results").
    pub fn allow_null(mut self, type_name: &str, field: &str) -> Result<Self, SetupError> {
        let Some(declared) = self.types.get_mut(type_name) else {
            return Err(SetupError::UnknownModel(type_name.into()));
        };
        let TypeDef::Struct(def) = &mut declared.def else {
            return Err(SetupError::UnknownField { model: type_name.into(), field: field.into() });
        };
        let Some(f) = def.fields.iter_mut().find(|f| f.json.as_deref() == Some(field)) else {
            return Err(SetupError::UnknownField { model: type_name.into(), field: field.into() });
        };
        f.nullable = true;
        Ok(self)
    }

    /// Every way `value` leaves the model `type_name`, objects closed; each as
    /// `at <path>: <why>`.
    pub fn errors(&self, type_name: &str, value: &Value) -> Vec<String> {
        self.errors_with(type_name, value, Strictness::Closed)
    }

    /// As [`GoModels::errors`]; [`Strictness::Open`] lets objects carry keys no field declares
    /// (for a vendor's error answers, which clients read only in part).
    pub fn errors_with(&self, type_name: &str, value: &Value, strictness: Strictness) -> Vec<String> {
        if !self.types.contains_key(type_name) && !self.opaque.contains(type_name) {
            return vec![format!("no model {type_name} among those loaded")];
        }
        self.check_type(&GoType::Named(type_name.into()), value, strictness)
    }

    pub(super) fn check_type(&self, ty: &GoType, value: &Value, strictness: Strictness) -> Vec<String> {
        let mut v = Validator { models: self, strictness, out: Vec::new() };
        if value.is_null() && !matches!(ty, GoType::Pointer(_) | GoType::Any) {
            v.out.push(format!("at /: expected {}, got null", v.expected(ty)));
        } else {
            v.value(ty, value, "", 0);
        }
        v.out
    }

    /// A struct's fields with the promoted ones of its embedded types; `false` when an embedded
    /// type is not loaded (its fields are unknown, so undeclared keys cannot be told).
    fn fields_of<'a>(&'a self, def: &'a StructDef, depth: usize, out: &mut Vec<&'a Field>) -> bool {
        let mut complete = true;
        for f in def.fields.iter().filter(|f| f.json.is_some()) {
            if !out.iter().any(|g| g.json == f.json) {
                out.push(f);
            }
        }
        for e in &def.embedded {
            match e.pointee() {
                GoType::Named(n) if depth < MAX_DEPTH => match self.types.get(n).map(|d| &d.def) {
                    Some(TypeDef::Struct(inner)) => complete &= self.fields_of(inner, depth + 1, out),
                    _ => complete = false,
                },
                GoType::Struct(inner) if depth < MAX_DEPTH => complete &= self.fields_of(inner, depth + 1, out),
                _ => complete = false,
            }
        }
        complete
    }
}

struct Validator<'m> {
    models: &'m GoModels,
    strictness: Strictness,
    out: Vec<String>,
}

fn rfc3339() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?i)^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}:\d{2}(\.\d+)?(z|[+-]\d{2}:\d{2})$")
            .expect("a valid pattern")
    })
}

impl Validator<'_> {
    fn expected(&self, ty: &GoType) -> String {
        match ty.pointee() {
            GoType::Named(n) => match self.models.types.get(n).map(|d| &d.def) {
                Some(TypeDef::Struct(_)) => format!("{n} (an object)"),
                Some(TypeDef::Alias(inner)) => format!("{n} ({})", inner.describe()),
                None => n.clone(),
            },
            other => other.describe(),
        }
    }

    fn mismatch(&mut self, ty: &GoType, v: &Value, at: &str) {
        let expected = self.expected(ty);
        self.out.push(format!("at {}: expected {expected}, got {}", shown(at), kind(v)));
    }

    fn value(&mut self, ty: &GoType, v: &Value, at: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.out.push(format!("at {}: nested deeper than {MAX_DEPTH} levels, not checked further", shown(at)));
            return;
        }
        match ty {
            GoType::Pointer(inner) => {
                if !v.is_null() {
                    self.value(inner, v, at, depth + 1);
                }
            }
            GoType::Any => {}
            GoType::String if v.is_string() => {}
            GoType::DateTime => match v.as_str() {
                Some(s) if rfc3339().is_match(s) => {}
                Some(_) => self.out.push(format!("at {}: expected an RFC 3339 date-time string", shown(at))),
                None => self.mismatch(ty, v, at),
            },
            GoType::Integer if v.is_i64() || v.is_u64() => {}
            GoType::Number if v.is_number() => {}
            GoType::Bool if v.is_boolean() => {}
            GoType::Slice(inner) => match v {
                // encoding/json writes a nil slice as null; whether a field may be null is the field's call.
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(inner, item, &format!("{at}/{i}"), depth + 1);
                    }
                }
                _ => self.mismatch(ty, v, at),
            },
            GoType::Map(inner) => match v {
                Value::Null => {}
                Value::Object(map) => {
                    for (k, item) in map {
                        self.value(inner, item, &format!("{at}/{k}"), depth + 1);
                    }
                }
                _ => self.mismatch(ty, v, at),
            },
            GoType::Named(n) => self.named(n, v, at, depth),
            GoType::Struct(def) => self.object("an anonymous struct", def, v, at, depth),
            GoType::Unsupported(t) => {
                self.out.push(format!("at {}: the Go type {t} is not one JSON can be checked against", shown(at)))
            }
            GoType::String | GoType::Integer | GoType::Number | GoType::Bool => self.mismatch(ty, v, at),
        }
    }

    fn named(&mut self, name: &str, v: &Value, at: &str, depth: usize) {
        if self.models.opaque.contains(name) {
            return;
        }
        let models = self.models;
        let Some(declared) = models.types.get(name) else {
            self.out.push(format!(
                "at {}: {name} is not among the loaded models, so this value cannot be checked",
                shown(at)
            ));
            return;
        };
        match &declared.def {
            TypeDef::Struct(def) => self.object(name, def, v, at, depth),
            TypeDef::Alias(ty) => {
                let before = self.out.len();
                self.value(ty, v, at, depth + 1);
                if self.out.len() == before {
                    if let Some(values) = self.models.enums.get(name) {
                        if !v.is_null() && !values.contains(v) {
                            let allowed = Value::Array(values.clone());
                            self.out.push(format!("at {}: {v} is not one of {allowed} ({name})", shown(at)));
                        }
                    }
                }
            }
        }
    }

    fn object(&mut self, name: &str, def: &StructDef, v: &Value, at: &str, depth: usize) {
        let Value::Object(map) = v else {
            self.out.push(format!("at {}: expected {name} (an object), got {}", shown(at), kind(v)));
            return;
        };
        let models = self.models;
        let mut fields = Vec::new();
        let complete = models.fields_of(def, depth, &mut fields);
        if !complete && self.strictness == Strictness::Closed {
            self.out.push(format!(
                "at {}: {name} embeds a type that is not loaded, so which keys it may carry is unknown",
                shown(at)
            ));
        }
        for (k, item) in map {
            match fields.iter().find(|f| f.json.as_deref() == Some(k.as_str())) {
                Some(f) => self.field(name, f, item, &format!("{at}/{k}"), depth),
                None if self.strictness == Strictness::Closed && complete => {
                    self.out.push(format!("at {}: `{k}` is not a field of {name}", shown(at)));
                }
                None => {}
            }
        }
        for f in fields.iter().filter(|f| f.required) {
            if let Some(j) = &f.json {
                if !map.contains_key(j) {
                    self.out.push(format!("at {}: the required field `{j}` of {name} is missing", shown(at)));
                }
            }
        }
    }

    fn field(&mut self, owner: &str, f: &Field, v: &Value, at: &str, depth: usize) {
        let name = f.json.as_deref().unwrap_or(&f.go_name);
        if v.is_null() {
            if !f.nullable {
                self.out.push(format!("at {at}: `{name}` of {owner} may not be null"));
            }
            return;
        }
        let before = self.out.len();
        self.value(&f.ty, v, at, depth + 1);
        if self.out.len() == before {
            if let Some(why) = check_rules(&f.rules, v) {
                self.out.push(format!("at {at}: `{name}` of {owner} {why}"));
            }
        }
    }
}

/// A value against go-swagger's validation keywords; `Some(why)` when it fails one.
fn check_rules(rules: &Map<String, Value>, v: &Value) -> Option<String> {
    if let Some(Value::Array(allowed)) = rules.get("enum") {
        if !allowed.contains(v) {
            return Some(format!("is {v}, not one of {}", Value::Array(allowed.clone())));
        }
    }
    let flag = |k: &str| rules.get(k).and_then(Value::as_bool).unwrap_or(false);
    if let Some(n) = v.as_f64() {
        if let Some(min) = rules.get("minimum").and_then(Value::as_f64) {
            if n < min || (flag("exclusiveMinimum") && n == min) {
                return Some(format!("is {n}, below the minimum {min}"));
            }
        }
        if let Some(max) = rules.get("maximum").and_then(Value::as_f64) {
            if n > max || (flag("exclusiveMaximum") && n == max) {
                return Some(format!("is {n}, above the maximum {max}"));
            }
        }
    }
    let limit = |k: &str| rules.get(k).and_then(Value::as_u64);
    let length = match v {
        Value::String(s) => Some((s.chars().count() as u64, "maxLength", "minLength", "characters")),
        Value::Array(a) => Some((a.len() as u64, "maxItems", "minItems", "items")),
        _ => None,
    };
    if let Some((len, max_key, min_key, unit)) = length {
        if let Some(max) = limit(max_key).filter(|m| len > *m) {
            return Some(format!("has {len} {unit}, more than {max}"));
        }
        if let Some(min) = limit(min_key).filter(|m| len < *m) {
            return Some(format!("has {len} {unit}, fewer than {min}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{item, SPEAKEASY_MODELS};
    use super::*;
    use crate::testing::specs;
    use serde_json::json;

    const SWAGGER: &str = r#"// Code generated by go-swagger; DO NOT EDIT.
package models

// DomainUserCreateRequest domain user create request
//
// swagger:model domain.UserCreateRequest
type DomainUserCreateRequest struct {

	// first name
	FirstName string `json:"firstName,omitempty"`

	// uid
	// Required: true
	UID *string `json:"uid"`

	// roles
	// Max Items: 2
	Roles []string `json:"roles"`

	// status
	// Enum: ["active","inactive"]
	Status string `json:"status,omitempty"`

	// limit
	// Maximum: 500
	// Minimum: 1
	Limit int32 `json:"limit,omitempty"`

	Meta *MsaMetaInfo `json:"meta,omitempty"`

	CreatedAt strfmt.DateTime `json:"created_at,omitempty"`
}

// Validate validates this model
func (m *DomainUserCreateRequest) Validate(formats strfmt.Registry) error {
	if err := validate.Required("uid", "body", m.UID); err != nil {
		return err
	}
	type local struct{ X int }
	return nil
}
"#;

    #[test]
    fn go_swagger_fields_are_required_by_comment_and_closed() {
        let m = GoModels::from_source("m.go", SWAGGER).unwrap().with_opaque_model("MsaMetaInfo").unwrap();
        assert!(m.has("DomainUserCreateRequest"));
        assert!(!m.has("local"), "a type inside a function body is not a model");
        let ok = json!({"uid": "a@b.c", "firstName": "A", "roles": ["x"], "status": "active", "limit": 500, "meta": {"any": 1},
            "created_at": "2024-01-02T03:04:05Z"});
        assert_eq!(m.errors("DomainUserCreateRequest", &ok), Vec::<String>::new());
        let e = m.errors("DomainUserCreateRequest", &json!({"first_name": "A", "firstName": null}));
        assert!(e.iter().any(|e| e.contains("`first_name` is not a field of DomainUserCreateRequest")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("the required field `uid`")), "{e:?}");
        assert_eq!(e.len(), 2, "firstName may be null (not required): {e:?}");
        let e = m.errors("DomainUserCreateRequest", &json!({"uid": null}));
        assert!(e[0].contains("`uid` of DomainUserCreateRequest may not be null"), "{e:?}");
        let e = m.errors("DomainUserCreateRequest", &json!({"uid": 5}));
        assert_eq!(e, vec!["at /uid: expected a string, got a number".to_owned()]);
        let bad =
            json!({"uid": "u", "status": "gone", "limit": 501, "roles": ["a", "b", "c"], "created_at": "yesterday"});
        let e = m.errors("DomainUserCreateRequest", &bad);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|e| e.contains("/status") && e.contains("not one of")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("/limit") && e.contains("above the maximum 500")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("/roles") && e.contains("more than 2")), "{e:?}");
        assert!(e.iter().any(|e| e.contains("/created_at") && e.contains("RFC 3339")), "{e:?}");
    }

    #[test]
    fn a_model_that_is_not_loaded_is_named_not_passed() {
        let m = GoModels::from_source("m.go", SWAGGER).unwrap();
        assert_eq!(m.missing_models(), BTreeSet::from(["MsaMetaInfo".to_owned()]));
        let e = m.errors("DomainUserCreateRequest", &json!({"uid": "u", "meta": {}}));
        assert!(e[0].contains("MsaMetaInfo is not among the loaded models"), "{e:?}");
        assert_eq!(m.errors("Nope", &json!({})), vec!["no model Nope among those loaded".to_owned()]);
        assert_eq!(
            GoModels::from_source("m.go", SWAGGER).unwrap().with_opaque_model("DomainUserCreateRequest").unwrap_err(),
            SetupError::AlreadyDefined("DomainUserCreateRequest".into())
        );
    }

    #[test]
    fn speakeasy_fields_without_omitempty_are_required_and_enums_come_from_consts() {
        let m = GoModels::from_source("m.go", SPEAKEASY_MODELS).unwrap();
        assert_eq!(m.enum_values("StatusEnum"), Some(&[json!("pending"), json!("accepted")][..]));
        assert!(m.errors("Item", &item()).is_empty());
        let e = m.errors("Item", &json!({"uri": "u", "status": "declined", "user": null, "created_at": "2024-01-02T03:04:05Z", "extra": {"a": [1]}}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("\"declined\" is not one of") && e[0].contains("StatusEnum"), "{e:?}");
        let e = m.errors("Page", &json!({"next_page_token": null}));
        assert!(e[0].contains("may not be null"), "{e:?}");
        let m = m.allow_null("Page", "next_page_token").unwrap();
        assert!(m.errors("Page", &json!({"next_page_token": null})).is_empty());
        assert_eq!(
            m.clone().allow_null("Page", "next").unwrap_err(),
            SetupError::UnknownField { model: "Page".into(), field: "next".into() }
        );
        let e = m.errors(
            "List200ApplicationJSON",
            &json!({"collection": [item(), {"uri": 1}], "pagination": {"next_page_token": "t"}}),
        );
        assert!(e.iter().any(|e| e.starts_with("at /collection/1/uri: expected a string")), "{e:?}");
        assert!(
            e.iter().any(|e| e.contains("at /collection/1: the required field `status` of Item is missing")),
            "{e:?}"
        );
    }

    #[test]
    fn odd_source_does_not_panic() {
        for src in [
            "type",
            "type X struct {",
            "type X struct { A `json:\"a\"",
            "const (",
            "type X map[",
            "\"unterminated",
            "func (",
            "type X [",
            "/* open",
        ] {
            let _ = GoModels::from_source("odd.go", src);
        }
        let m = GoModels::from_source("a.go", "package p\ntype A B\ntype B A\n").unwrap();
        assert!(!m.errors("A", &json!("x")).is_empty(), "an alias cycle ends in a message");
        let twice = GoModels::from_source("a.go", "package p\ntype A string\ntype A int\n").unwrap_err();
        assert!(twice.to_string().contains("defined twice"), "{twice}");
    }

    #[test]
    fn gofalcon_models_from_the_published_sdk() {
        let m = GoModels::load_dir(&specs().join("crowdstrike/gofalcon")).unwrap();
        for t in [
            "DomainUserCreateRequest",
            "DomainUpdateUserFields",
            "DomainRoleIDs",
            "DomainUserMetadata",
            "MsaQueryResponse",
        ] {
            assert!(m.has(t), "{t}");
        }
        let create = json!({"uid": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"});
        assert!(m.errors("DomainUserCreateRequest", &create).is_empty());
        let snake = json!({"uid": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"});
        let e = m.errors("DomainUserCreateRequest", &snake);
        assert!(e.iter().any(|e| e.contains("`first_name` is not a field of DomainUserCreateRequest")), "{e:?}");
        assert!(m.errors("DomainRoleIDs", &json!({"roleIds": ["r1"]})).is_empty());
        let e = m.errors("DomainRoleIDs", &json!({"roleIds": ["r1"], "user_uuid": "u"}));
        assert!(e.iter().any(|e| e.contains("`user_uuid` is not a field of DomainRoleIDs")), "{e:?}");
        assert!(m.errors("DomainRoleIDs", &json!({}))[0].contains("required field `roleIds`"));
        let user = json!({"uuid": "u1", "uid": "ada@example.com", "customer": "c", "firstName": "Ada", "lastName": "L", "status": "active"});
        assert!(m.errors("DomainUserMetadata", &user).is_empty());
        assert!(m.errors("DomainUserMetadata", &json!({"uuid": null, "customer": "c"}))[0].contains("`uuid`"));
        // MsaQueryResponse's `meta` and `errors` name models gofalcon's copy here does not hold.
        let missing = m.missing_models();
        assert!(missing.contains("MsaMetaInfo") && missing.contains("MsaAPIError"), "{missing:?}");
        let query = json!({"errors": [], "meta": {"query_time": 0.1}, "resources": ["u1"]});
        assert!(m.errors("MsaQueryResponse", &query).iter().any(|e| e.contains("MsaMetaInfo")));
        let m = m.with_opaque_model("MsaMetaInfo").unwrap().with_opaque_model("MsaAPIError").unwrap();
        assert!(m.errors("MsaQueryResponse", &query).is_empty());
        assert!(m.errors("MsaQueryResponse", &json!({"meta": {}, "resources": []}))[0].contains("`errors`"));
    }
}
