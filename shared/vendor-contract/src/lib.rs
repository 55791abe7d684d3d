//! The judge of the contract tests: does an HTTP exchange (a request a client made and the
//! answer it got) fit the vendor's **published** API definition?
//!
//! Our clients and our simulator were written from the same guides, so they can agree with each
//! other and both be wrong. This crate reads what the vendors publish, as handed to us in
//! `../shared/vendor-specs/` beside the checkout (never copied into the repository), and checks
//! exchanges against it:
//! - [`openapi::OpenApi`]: an OpenAPI 3.0 document (CircleCI, Jira, Atlassian SCIM, Pipedrive v1):
//!   the operation for the method and path, its query and path parameters (names, types,
//!   ranges, enums, repetition), the request body and the response body against their schemas
//!   (OpenAPI's schema dialect translated to JSON Schema in [`schema`]);
//! - where a vendor publishes no raw document, the tables and models of its own generated SDKs:
//!   [`falconpy`] (CrowdStrike's FalconPy endpoint table with gofalcon's models), [`gosdk`]
//!   (Calendly's Speakeasy Go SDK) and [`ts_sdk`] (Pipedrive's official Node SDK, for API v2).
//!
//! A [`Definition`] answers [`Definition::check`] with the operation it matched, or every way the
//! exchange leaves the definition. The test that drives the clients decides what to record and
//! which definition judges which base path (shared/vendors/tests/contract).

pub mod falconpy;
pub mod gosdk;
pub mod openapi;
mod operation;
pub mod schema;
pub mod ts_sdk;

use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// One request and its answer, as recorded by the simulator. `path` is the vendor's own path
/// (the definition's, e.g. `/rest/api/3/user`), any mount prefix already removed.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// Decoded pairs in order; a repeated parameter appears repeatedly.
    pub query: Vec<(String, String)>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response: Option<Value>,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// `GET /users/{id}` style, for messages.
    pub fn line(&self) -> String {
        let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if q.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, q.join("&"))
        }
    }
}

/// Which part of the exchange left the definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// No operation has this method and path.
    Operation,
    Query,
    PathParam,
    RequestBody,
    Status,
    ResponseBody,
}

/// One way an exchange leaves the definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub part: Part,
    pub message: String,
}

impl Violation {
    pub fn new(part: Part, message: impl Into<String>) -> Self {
        Violation { part, message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.part, self.message)
    }
}

/// What a definition says of an exchange.
pub type Verdict = Result<String, Vec<Violation>>;

/// A vendor's published definition (or a part of it).
pub trait Definition {
    /// The operation id (or `METHOD /template` where the definition has none) that the exchange
    /// matched, or every violation found.
    fn check(&self, exchange: &Exchange) -> Verdict;
}

/// Why a definition could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source} (the vendors' definitions are in ../shared/vendor-specs beside the checkout; LIFECYCLE_VENDOR_SPECS overrides)")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a definition we can read: {message}")]
    Parse { path: PathBuf, message: String },
}

/// An addition a test makes to a definition (a rule, a model, a nullable field) named something
/// the definition does not have: a typo there must fail the test, not switch a check off.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("no operation `{0}` in the definition")]
    UnknownOperation(String),
    #[error("no model `{0}` among those loaded")]
    UnknownModel(String),
    #[error("the model `{model}` has no field `{field}`")]
    UnknownField { model: String, field: String },
    #[error("the operation `{operation}` has no parameter `{parameter}`")]
    UnknownParameter { operation: String, parameter: String },
    #[error("the operation `{0}` takes no body")]
    NoBody(String),
    #[error("`{0}` is already defined")]
    AlreadyDefined(String),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })
}

/// Every file's text, labelled with its path as displayed (the first that cannot be read is the
/// error).
pub(crate) fn read_labelled<P: AsRef<Path>>(files: &[P]) -> Result<Vec<(String, String)>, LoadError> {
    files.iter().map(|p| Ok((p.as_ref().display().to_string(), read(p.as_ref())?))).collect()
}

/// `(label, text)` pairs borrowed, as the `from_sources` constructors take them.
pub(crate) fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(l, t)| (l.as_str(), t.as_str())).collect()
}

/// Nesting deeper than this is not followed (a guard against cycles and hostile input, not a
/// limit any vendor's payload reaches).
pub(crate) const MAX_DEPTH: usize = 64;

/// A JSON pointer into an instance for messages: the root is `/`.
pub(crate) fn shown(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

/// What a JSON value is, for messages (never the value itself: it may be a secret).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A lexer's word or number: the run of characters from `start` that `fits`, and the index
/// after it.
pub(crate) fn run_of(chars: &[char], start: usize, fits: impl Fn(char) -> bool) -> (String, usize) {
    let end =
        chars.get(start..).and_then(|rest| rest.iter().position(|c| !fits(*c))).map_or(chars.len(), |n| start + n);
    (chars[start.min(end)..end].iter().collect(), end)
}

/// A number literal of source code (an integer where it is one), or null where it is none.
pub(crate) fn number(text: &str) -> Value {
    text.parse::<i64>()
        .map(Value::from)
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number))
        .unwrap_or(Value::Null)
}

/// `../shared/vendor-specs` beside the checkout (or `LIFECYCLE_VENDOR_SPECS`). It is handed to
/// the project, not part of it: a missing folder is an error, never a skipped check.
pub fn specs_dir() -> Result<PathBuf, LoadError> {
    let dir = match std::env::var_os("LIFECYCLE_VENDOR_SPECS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor-specs"),
    };
    match dir.canonicalize() {
        Ok(d) => Ok(d),
        Err(source) => Err(LoadError::Io { path: dir, source }),
    }
}

/// A path template such as `/users/{id}/roleAssignments` matched against a concrete path.
/// Returns the path parameters' values, or `None`.
pub fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        if let Some(name) = ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if ps.is_empty() {
                return None;
            }
            params.push((name.to_owned(), percent_decode(ps)));
        } else if ts != ps {
            return None;
        }
    }
    Some(params)
}

/// Of several templates matching one path, the most literal one wins (`/user/search` over
/// `/user/{id}`), as routers do.
pub fn literal_segments(template: &str) -> usize {
    template.split('/').filter(|s| !s.starts_with('{')).count()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a parameter's value (always text on the wire) against a simple schema: the type,
/// `enum`, `minimum`/`maximum` (`exclusive*` too), `maxLength`/`minLength`.
pub(crate) fn check_scalar(name: &str, value: &str, schema: &Value) -> Result<(), String> {
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("string");
    let number = match ty {
        "integer" => Some(
            value
                .parse::<i64>()
                .map(|n| n as f64)
                .map_err(|_| format!("`{name}` must be an integer, got `{value}`"))?,
        ),
        "number" => Some(value.parse::<f64>().map_err(|_| format!("`{name}` must be a number, got `{value}`"))?),
        "boolean" if !matches!(value, "true" | "false") => {
            return Err(format!("`{name}` must be true or false, got `{value}`"));
        }
        _ => None,
    };
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        // A number or boolean in the enum is compared as the text it is sent as (`0 | 1`).
        let ok = allowed.iter().any(|a| match a {
            Value::String(s) => s == value,
            other => other.to_string().as_str() == value,
        });
        if !ok {
            return Err(format!("`{name}`=`{value}` is not one of {}", Value::Array(allowed.clone())));
        }
    }
    if let Some(n) = number {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool).unwrap_or(false);
            if n < min || (exclusive && n == min) {
                return Err(format!("`{name}`={value} is below the minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool).unwrap_or(false);
            if n > max || (exclusive && n == max) {
                return Err(format!("`{name}`={value} is above the maximum {max}"));
            }
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if value.chars().count() as u64 > max {
            return Err(format!("`{name}` is longer than {max}"));
        }
    }
    Ok(())
}

/// What the definitions' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::Exchange;
    use std::path::PathBuf;

    /// A request with its query, answered 200 with nothing.
    pub(crate) fn ex(method: &str, path: &str, query: &[(&str, &str)]) -> Exchange {
        Exchange {
            method: method.into(),
            path: path.into(),
            query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            status: 200,
            ..Exchange::default()
        }
    }

    pub(crate) fn specs() -> PathBuf {
        crate::specs_dir().expect("the vendors' definitions (../shared/vendor-specs) must be present for these tests")
    }

    /// 4000 sources for a parser to end on (no panic, no endless loop): each of 1 to `most`
    /// fragments, each followed by `sep`, picked by a fixed pseudo-random sequence from `seed`.
    pub(crate) fn soup(fragments: &[&str], mut seed: u64, most: u64, sep: &str) -> Vec<String> {
        (0..4000)
            .map(|_| {
                let mut src = String::new();
                for _ in 0..(seed % most + 1) {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    src.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
                    src.push_str(sep);
                }
                src
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_match_segment_by_segment() {
        assert_eq!(match_template("/users/{id}", "/users/42"), Some(vec![("id".into(), "42".into())]));
        assert_eq!(match_template("/users/{id}", "/users/42/roles"), None);
        assert_eq!(match_template("/users/{id}", "/users/"), None);
        assert_eq!(match_template("/me", "/me"), Some(vec![]));
        assert_eq!(match_template("/a/{b}", "/a/x%40y"), Some(vec![("b".into(), "x@y".into())]));
        assert!(literal_segments("/user/search") > literal_segments("/user/{id}"));
    }

    #[test]
    fn scalars_are_checked_for_type_range_and_enum() {
        let limit = json!({"type": "integer", "minimum": 1, "maximum": 500});
        assert!(check_scalar("limit", "500", &limit).is_ok());
        assert!(check_scalar("limit", "501", &limit).unwrap_err().contains("maximum"));
        assert!(check_scalar("limit", "0", &limit).unwrap_err().contains("minimum"));
        assert!(check_scalar("limit", "ten", &limit).unwrap_err().contains("integer"));
        let status = json!({"type": "string", "enum": ["open", "won"]});
        assert!(check_scalar("status", "open", &status).is_ok());
        assert!(check_scalar("status", "all", &status).is_err());
        assert!(check_scalar("flag", "yes", &json!({"type": "boolean"})).is_err());
    }
}
