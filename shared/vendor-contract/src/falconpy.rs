//! CrowdStrike Falcon's user-management API as FalconPy publishes it, as a [`Definition`].
//!
//! CrowdStrike publishes no raw swagger document; FalconPy, its own Python SDK, carries an
//! endpoint table generated from it (`_endpoint/_user_management.py`, `_oauth2.py`): a Python
//! literal, one entry per operation,
//! `["opId", "METHOD", "/path?offset={}&limit={}", "description", "collection", [params]]`,
//! each parameter a Swagger 2 parameter object (`name`, `in`, `type`, `required`, `minimum`,
//! `maximum`, `enum`, `default`, `items`, `collectionFormat`). [`FalconPy::load`] reads those
//! tables with a small parser of Python literals (strings with escapes and adjacent-literal
//! concatenation, numbers, `True`/`False`/`None`, lists, tuples, dicts, comments).
//!
//! An exchange is judged by: the operation for its method and path (the most literal template
//! wins; where two tables loaded together both have it, the current table's entry wins over a
//! deprecated table's, then an entry whose description does not start "Deprecated"); no query
//! parameter the entry does not declare, each declared one of its type, range and enum, repeated
//! only for an array with `collectionFormat: multi` (`csv`, the Swagger 2 default, and `ssv`,
//! `tsv`, `pipes` are one joined value, checked item by item), every required one present;
//! required headers present; form fields (`in: formData`, the OAuth2 token request) read from the
//! form-encoded body (the recorder keeps a body that is not JSON as a JSON string): only declared
//! ones, required ones present, typed.
//!
//! The table gives a `body` parameter no schema, so [`FalconPy::with_body_model`] attaches
//! gofalcon's model for it (read by [`GoModels`]); a body sent to an operation with no model
//! attached is a violation ("no model to check the body against"), so no body passes unchecked.
//! A body sent to an operation that declares none is one too. Responses are checked only where
//! [`FalconPy::with_response_model`] attached a model for that status (2xx closed, errors open);
//! once one 2xx model is attached to an operation, a 2xx status without one is a violation. The
//! table says nothing of responses by itself, so without attached models they are not checked.

use crate::gosdk::GoModels;
pub use crate::gosdk::SetupError;
use crate::schema::Strictness;
use crate::{
    check_scalar, literal_segments, match_template, read, Definition, Exchange, LoadError, Part, Verdict, Violation,
};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// FalconPy's endpoint tables, with the gofalcon models a test attaches.
#[derive(Clone, Debug)]
pub struct FalconPy {
    /// Most literal templates first; then current tables before deprecated ones, in load order.
    ops: Vec<Operation>,
}

#[derive(Clone, Debug)]
struct Operation {
    id: String,
    method: String,
    template: String,
    /// From a table of deprecated operations (FalconPy's `_deprecated` modules).
    legacy_table: bool,
    /// The description starts "Deprecated".
    deprecated: bool,
    params: Vec<Param>,
    body_model: Option<Model>,
    responses: Vec<(u16, Model)>,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} ({} {})", self.id, self.method, self.template)
    }

    fn params_in(&self, place: Place) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(move |p| p.place == place)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Query,
    Path,
    Header,
    Body,
    FormData,
}

#[derive(Clone, Debug)]
struct Param {
    name: String,
    place: Place,
    /// The parameter object without its description: a schema for [`check_scalar`].
    schema: Value,
    required: bool,
}

impl Param {
    fn is_array(&self) -> bool {
        self.schema["type"] == "array"
    }

    /// How an array's values travel: `None` repeated (`multi`), else joined by the separator.
    fn separator(&self) -> Option<char> {
        match self.schema["collectionFormat"].as_str().unwrap_or("csv") {
            "multi" => None,
            "ssv" => Some(' '),
            "tsv" => Some('\t'),
            "pipes" => Some('|'),
            _ => Some(','),
        }
    }

    fn item_schema(&self) -> &Value {
        if self.is_array() {
            &self.schema["items"]
        } else {
            &self.schema
        }
    }
}

/// A gofalcon model attached to an operation's body or response.
#[derive(Clone, Debug)]
struct Model {
    models: Arc<GoModels>,
    type_name: String,
}

impl FalconPy {
    /// Reads FalconPy endpoint table files (`falconpy__endpoint__user_management.py`, …). A file
    /// whose name or module docstring says "deprecated" holds the legacy entries.
    pub fn load<P: AsRef<Path>>(table_paths: &[P]) -> Result<Self, LoadError> {
        let mut texts = Vec::new();
        for p in table_paths {
            let path = p.as_ref();
            texts.push((path.to_owned(), read(path)?));
        }
        let mut ops = Vec::new();
        for (path, text) in &texts {
            let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
            ops.extend(
                table_ops(text, name.contains("deprecated"))
                    .map_err(|message| LoadError::Parse { path: path.clone(), message })?,
            );
        }
        Ok(Self::new(ops))
    }

    /// From `(label, Python source)` pairs (a test's fixtures); a label or docstring naming
    /// "deprecated" marks a legacy table, as in [`FalconPy::load`].
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut ops = Vec::new();
        for (label, text) in sources {
            let legacy = label.to_lowercase().contains("deprecated");
            ops.extend(
                table_ops(text, legacy).map_err(|message| LoadError::Parse { path: PathBuf::from(label), message })?,
            );
        }
        Ok(Self::new(ops))
    }

    fn new(mut ops: Vec<Operation>) -> Self {
        // Stable: within a rank, load order stays.
        ops.sort_by_key(|o| (std::cmp::Reverse(literal_segments(&o.template)), o.legacy_table, o.deprecated));
        FalconPy { ops }
    }

    /// Whether a table has `method` at `template` (query template stripped), e.g.
    /// `has("GET", "/user-management/queries/users/v1")`.
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.iter().any(|o| o.method.eq_ignore_ascii_case(method) && o.template == template)
    }

    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().map(|o| o.id.as_str())
    }

    /// Attaches gofalcon's model `type_name` to the body of every entry with id `op_id` (the
    /// model FalconPy's table leaves untyped: `DomainUserCreateRequest` for `createUserV1`).
    pub fn with_body_model(mut self, op_id: &str, models: &GoModels, type_name: &str) -> Result<Self, SetupError> {
        let model = Self::model(models, type_name)?;
        let mut found = false;
        for op in self.ops.iter_mut().filter(|o| o.id == op_id) {
            if op.params_in(Place::Body).next().is_none() {
                return Err(SetupError::NoBody(op_id.into()));
            }
            op.body_model = Some(model.clone());
            found = true;
        }
        if found {
            Ok(self)
        } else {
            Err(SetupError::UnknownOperation(op_id.into()))
        }
    }

    /// Attaches gofalcon's model `type_name` to the answers of `op_id` with `status` (gofalcon's
    /// `*Responses` files name each status's payload model).
    pub fn with_response_model(
        mut self,
        op_id: &str,
        status: u16,
        models: &GoModels,
        type_name: &str,
    ) -> Result<Self, SetupError> {
        let model = Self::model(models, type_name)?;
        let mut found = false;
        for op in self.ops.iter_mut().filter(|o| o.id == op_id) {
            op.responses.retain(|(s, _)| *s != status);
            op.responses.push((status, model.clone()));
            found = true;
        }
        if found {
            Ok(self)
        } else {
            Err(SetupError::UnknownOperation(op_id.into()))
        }
    }

    fn model(models: &GoModels, type_name: &str) -> Result<Model, SetupError> {
        if !models.has(type_name) {
            return Err(SetupError::UnknownModel(type_name.into()));
        }
        Ok(Model { models: Arc::new(models.clone()), type_name: type_name.into() })
    }

    fn check_params(op: &Operation, ex: &Exchange, path_values: &[(String, String)]) -> Vec<Violation> {
        let mut out = Vec::new();
        for (name, value) in path_values {
            if let Some(p) = op.params_in(Place::Path).find(|p| &p.name == name) {
                if let Err(e) = check_scalar(name, value, &p.schema) {
                    out.push(Violation::new(Part::PathParam, format!("{e} ({})", op.id)));
                }
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &ex.query {
            let Some(p) = op.params_in(Place::Query).find(|p| &p.name == name) else {
                out.push(Violation::new(Part::Query, format!("`{name}` is not a query parameter of {}", op.label())));
                continue;
            };
            let separator = p.separator();
            if seen.contains(&name.as_str()) && !(p.is_array() && separator.is_none()) {
                out.push(Violation::new(
                    Part::Query,
                    format!(
                        "`{name}` is sent more than once but {} takes it once (not `collectionFormat: multi`)",
                        op.id
                    ),
                ));
            }
            seen.push(name);
            let values: Vec<&str> = match (p.is_array(), separator) {
                (true, Some(sep)) => value.split(sep).collect(),
                _ => vec![value],
            };
            for v in values {
                if let Err(e) = check_scalar(name, v, p.item_schema()) {
                    out.push(Violation::new(Part::Query, format!("{e} ({})", op.id)));
                }
            }
        }
        for p in op.params_in(Place::Query).filter(|p| p.required) {
            if !ex.query.iter().any(|(k, _)| k == &p.name) {
                out.push(Violation::new(
                    Part::Query,
                    format!("the required query parameter `{}` of {} is missing", p.name, op.id),
                ));
            }
        }
        for p in op.params_in(Place::Header).filter(|p| p.required) {
            if ex.header(&p.name).is_none() {
                out.push(Violation::new(
                    Part::Query,
                    format!("the required header `{}` of {} is missing", p.name, op.id),
                ));
            }
        }
        out
    }

    fn check_body(op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let sent = ex.body.as_ref().filter(|b| !b.is_null());
        if op.params_in(Place::FormData).next().is_some() {
            return Self::check_form(op, ex, sent);
        }
        let Some(param) = op.params_in(Place::Body).next() else {
            return match sent {
                Some(_) => {
                    vec![Violation::new(Part::RequestBody, format!("{} takes no body, one was sent", op.label()))]
                }
                None => vec![],
            };
        };
        let Some(body) = sent else {
            return if param.required {
                vec![Violation::new(Part::RequestBody, format!("{} requires a body and none was sent", op.id))]
            } else {
                vec![]
            };
        };
        let Some(model) = &op.body_model else {
            return vec![Violation::new(
                Part::RequestBody,
                format!(
                    "{}: no model to check the body against (FalconPy's table gives none; attach gofalcon's)",
                    op.id
                ),
            )];
        };
        model
            .models
            .errors_with(&model.type_name, body, Strictness::Closed)
            .into_iter()
            .map(|e| Violation::new(Part::RequestBody, format!("{} body ({}) {e}", op.id, model.type_name)))
            .collect()
    }

    /// Form fields: never echoed in messages (the token request's are credentials).
    fn check_form(op: &Operation, ex: &Exchange, sent: Option<&Value>) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(ct) = ex.header("content-type") {
            let mime = ct.split(';').next().unwrap_or(ct).trim().to_ascii_lowercase();
            if mime != "application/x-www-form-urlencoded" && mime != "multipart/form-data" {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("{} takes a form, the body was sent as {mime}", op.id),
                ));
            }
        }
        let fields: Vec<(String, String)> = match sent {
            None => Vec::new(),
            Some(Value::String(s)) => parse_form(s),
            Some(Value::Object(map)) => {
                map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
            }
            Some(other) => {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("{} takes a form, the body is {}", op.id, crate::gosdk::kind(other)),
                ));
                return out;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &fields {
            let Some(p) = op.params_in(Place::FormData).find(|p| &p.name == name) else {
                out.push(Violation::new(Part::RequestBody, format!("`{name}` is not a form field of {}", op.label())));
                continue;
            };
            if seen.contains(&name.as_str()) && !p.is_array() {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("the form field `{name}` of {} is sent more than once", op.id),
                ));
            }
            seen.push(name);
            if check_scalar(name, value, p.item_schema()).is_err() {
                let ty = p.item_schema()["type"].as_str().unwrap_or("string");
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("the form field `{name}` of {} does not fit its definition ({ty})", op.id),
                ));
            }
        }
        for p in op.params_in(Place::FormData).filter(|p| p.required) {
            if !fields.iter().any(|(k, _)| k == &p.name) {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("the required form field `{}` of {} is missing", p.name, op.id),
                ));
            }
        }
        out
    }

    fn check_response(op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let success = (200..300).contains(&ex.status);
        let Some((_, model)) = op.responses.iter().find(|(s, _)| *s == ex.status) else {
            let declared: Vec<String> =
                op.responses.iter().filter(|(s, _)| (200..300).contains(s)).map(|(s, _)| s.to_string()).collect();
            return if success && !declared.is_empty() {
                vec![Violation::new(
                    Part::Status,
                    format!(
                        "{} does not answer {} (its models are for {})",
                        op.label(),
                        ex.status,
                        declared.join(", ")
                    ),
                )]
            } else {
                vec![]
            };
        };
        let Some(body) = ex.response.as_ref().filter(|b| !b.is_null()) else {
            return if success {
                vec![Violation::new(
                    Part::ResponseBody,
                    format!("{} answers {} with {}, no body was sent", op.id, ex.status, model.type_name),
                )]
            } else {
                vec![]
            };
        };
        let strictness = if success { Strictness::Closed } else { Strictness::Open };
        model
            .models
            .errors_with(&model.type_name, body, strictness)
            .into_iter()
            .map(|e| Violation::new(Part::ResponseBody, format!("{} {} ({}) {e}", op.id, ex.status, model.type_name)))
            .collect()
    }
}

impl Definition for FalconPy {
    fn check(&self, ex: &Exchange) -> Verdict {
        let mut path_matched = false;
        for op in &self.ops {
            let Some(values) = match_template(&op.template, &ex.path) else { continue };
            path_matched = true;
            if !op.method.eq_ignore_ascii_case(&ex.method) {
                continue;
            }
            let mut violations = Self::check_params(op, ex, &values);
            violations.extend(Self::check_body(op, ex));
            violations.extend(Self::check_response(op, ex));
            return if violations.is_empty() { Ok(op.id.clone()) } else { Err(violations) };
        }
        let why = if path_matched {
            format!("no {} operation at {}", ex.method, ex.path)
        } else {
            format!("no path of the definition matches {}", ex.path)
        };
        Err(vec![Violation::new(Part::Operation, why)])
    }
}

/// `a=1&b=x+y%21` as decoded pairs.
fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The endpoint table: Python literals

/// Every endpoint table (a top-level `name = [[…], …]`) in one file, as operations.
fn table_ops(text: &str, legacy_by_name: bool) -> Result<Vec<Operation>, String> {
    let toks = py_lex(text)?;
    // The module docstring of FalconPy's deprecated tables says so.
    let legacy = legacy_by_name
        || matches!(toks.first(), Some(PyTok { kind: PyKind::Str(doc), .. }) if doc.lines().next().unwrap_or("").to_lowercase().contains("deprecated"));
    let mut ops = Vec::new();
    let mut tables = 0;
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].kind {
            PyKind::Punct('[' | '(' | '{') => depth += 1,
            PyKind::Punct(']' | ')' | '}') => depth = depth.saturating_sub(1),
            // `name = [` at the top level: an assignment of a list, maybe a table.
            PyKind::Name(name)
                if depth == 0
                    && toks.get(i + 1).is_some_and(|t| t.kind == PyKind::Punct('='))
                    && toks.get(i + 2).is_some_and(|t| t.kind == PyKind::Punct('[')) =>
            {
                let mut parser = PyParser { toks: &toks, pos: i + 2 };
                match parser.value(0) {
                    Ok(Value::Array(entries)) if entries.first().is_some_and(Value::is_array) => {
                        tables += 1;
                        for (n, entry) in entries.iter().enumerate() {
                            ops.push(entry_op(entry, legacy).map_err(|e| format!("{name}, entry {n}: {e}"))?);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if name.ends_with("_endpoints") => return Err(format!("{name}: {e}")),
                    Err(_) => {}
                }
                i = parser.pos;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if tables == 0 {
        return Err("no endpoint table (a top-level `name = [[\"opId\", \"METHOD\", \"/path\", …], …]`)".into());
    }
    Ok(ops)
}

/// `["opId", "METHOD", "/path?query={}", "description", "collection", [params]]`.
fn entry_op(entry: &Value, legacy: bool) -> Result<Operation, String> {
    let Value::Array(items) = entry else { return Err("not a list".into()) };
    let text =
        |i: usize, what: &str| items.get(i).and_then(Value::as_str).ok_or_else(|| format!("no {what} (item {i})"));
    let id = text(0, "operation id")?.to_owned();
    let method = text(1, "method")?.to_ascii_uppercase();
    let path = text(2, "path")?;
    let description = items.get(3).and_then(Value::as_str).unwrap_or_default();
    let template = path.split('?').next().unwrap_or(path).to_owned();
    if !template.starts_with('/') {
        return Err(format!("`{id}`: the path `{path}` does not start with /"));
    }
    let raw_params = match items.last() {
        Some(Value::Array(p)) if items.len() > 3 => p.as_slice(),
        _ => &[],
    };
    let mut params = Vec::new();
    for (n, p) in raw_params.iter().enumerate() {
        let Value::Object(map) = p else { return Err(format!("`{id}`: parameter {n} is not a dict")) };
        let name =
            map.get("name").and_then(Value::as_str).ok_or_else(|| format!("`{id}`: parameter {n} has no name"))?;
        let place = match map.get("in").and_then(Value::as_str) {
            Some("query") => Place::Query,
            Some("path") => Place::Path,
            Some("header") => Place::Header,
            Some("body") => Place::Body,
            Some("formData") => Place::FormData,
            other => return Err(format!("`{id}`: parameter `{name}` is in {other:?}")),
        };
        let mut schema: Map<String, Value> = map.clone();
        schema.remove("description");
        let required = map.get("required") == Some(&Value::Bool(true));
        params.push(Param { name: name.to_owned(), place, schema: Value::Object(schema), required });
    }
    Ok(Operation {
        id,
        method,
        template,
        legacy_table: legacy,
        deprecated: description.trim_start().to_lowercase().starts_with("deprecated"),
        params,
        body_model: None,
        responses: Vec::new(),
    })
}

#[derive(Clone, Debug, PartialEq)]
enum PyKind {
    Str(String),
    Num(Value),
    Name(String),
    Punct(char),
    /// `==`, `**`, `->`, … (kept apart so that `a == [` is not an assignment).
    Op(String),
}

#[derive(Clone, Debug, PartialEq)]
struct PyTok {
    kind: PyKind,
    line: usize,
}

fn py_lex(src: &str) -> Result<Vec<PyTok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while let Some(c) = at(i) {
        let start_line = line;
        let push = |out: &mut Vec<PyTok>, kind| out.push(PyTok { kind, line: start_line });
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '\\' if at(i + 1) == Some('\n') => {
                line += 1;
                i += 2;
            }
            '#' => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let is_prefix = word.len() <= 2 && word.chars().all(|c| "rRbBuUfF".contains(c));
                if is_prefix && matches!(at(i), Some('"' | '\'')) {
                    let raw = word.contains(['r', 'R']);
                    let (text, next, lines) = py_string(&chars, i, raw).map_err(|e| format!("line {line}: {e}"))?;
                    push(&mut out, PyKind::Str(text));
                    line += lines;
                    i = next;
                } else {
                    push(&mut out, PyKind::Name(word));
                }
            }
            '"' | '\'' => {
                let (text, next, lines) = py_string(&chars, i, false).map_err(|e| format!("line {line}: {e}"))?;
                push(&mut out, PyKind::Str(text));
                line += lines;
                i = next;
            }
            c if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                let hex = c == '0' && matches!(at(i + 1), Some('x' | 'X'));
                loop {
                    match at(i) {
                        Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == '_' => i += 1,
                        // An exponent's sign (`1e-3`); in hex, `e` is a digit and a sign ends the number.
                        Some('+' | '-') if !hex && matches!(at(i - 1), Some('e' | 'E')) => i += 1,
                        _ => break,
                    }
                }
                let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
                let value = py_number(&text).ok_or_else(|| format!("line {line}: `{text}` is not a number we read"))?;
                push(&mut out, PyKind::Num(value));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["==", "!=", "<=", ">=", "->", ":=", "**", "//", "+=", "-=", "*=", "/="].contains(&two.as_str()) {
                    push(&mut out, PyKind::Op(two));
                    i += 2;
                } else {
                    push(&mut out, PyKind::Punct(c));
                    i += 1;
                }
            }
        }
    }
    Ok(out)
}

fn py_number(text: &str) -> Option<Value> {
    let lower = text.to_ascii_lowercase();
    let int = |digits: &str, radix| i64::from_str_radix(digits, radix).ok().map(Value::from);
    if let Some(h) = lower.strip_prefix("0x") {
        return int(h, 16);
    }
    if let Some(o) = lower.strip_prefix("0o") {
        return int(o, 8);
    }
    if let Some(b) = lower.strip_prefix("0b") {
        return int(b, 2);
    }
    lower
        .parse::<i64>()
        .map(Value::from)
        .ok()
        .or_else(|| lower.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number))
}

/// A string literal at `start` (its opening quote): the text, the index after it, and how many
/// newlines it spans.
fn py_string(chars: &[char], start: usize, raw: bool) -> Result<(String, usize, usize), String> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    let mut lines = 0;
    loop {
        let Some(&c) = chars.get(i) else { return Err("an unterminated string".into()) };
        if c == quote && (!triple || (chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote))) {
            return Ok((out, i + if triple { 3 } else { 1 }, lines));
        }
        match c {
            '\n' if !triple => return Err("a newline in a one-line string".into()),
            '\n' => {
                lines += 1;
                out.push('\n');
                i += 1;
            }
            '\\' => {
                let Some(&e) = chars.get(i + 1) else { return Err("an unterminated string".into()) };
                if e == '\n' {
                    lines += 1;
                }
                if raw {
                    out.push('\\');
                    out.push(e);
                    i += 2;
                    continue;
                }
                let hex = |from: usize, n: usize| {
                    let s: String = chars.iter().skip(from).take(n).collect();
                    if s.len() == n {
                        u32::from_str_radix(&s, 16).ok().and_then(char::from_u32)
                    } else {
                        None
                    }
                };
                let (decoded, used): (Option<String>, usize) = match e {
                    '\n' => (Some(String::new()), 2),
                    '\\' | '\'' | '"' => (Some(e.to_string()), 2),
                    'n' => (Some("\n".into()), 2),
                    't' => (Some("\t".into()), 2),
                    'r' => (Some("\r".into()), 2),
                    'a' => (Some("\u{7}".into()), 2),
                    'b' => (Some("\u{8}".into()), 2),
                    'f' => (Some("\u{c}".into()), 2),
                    'v' => (Some("\u{b}".into()), 2),
                    'x' => (hex(i + 2, 2).map(String::from), 4),
                    'u' => (hex(i + 2, 4).map(String::from), 6),
                    'U' => (hex(i + 2, 8).map(String::from), 10),
                    '0'..='7' => {
                        let digits: String =
                            chars.iter().skip(i + 1).take(3).take_while(|c| ('0'..='7').contains(c)).collect();
                        let n = digits.len();
                        (u32::from_str_radix(&digits, 8).ok().and_then(char::from_u32).map(String::from), 1 + n)
                    }
                    // An unknown escape keeps its backslash, as Python does.
                    other => (Some(format!("\\{other}")), 2),
                };
                let decoded = decoded.ok_or_else(|| format!("a bad `\\{e}` escape"))?;
                out.push_str(&decoded);
                i += used;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

struct PyParser<'t> {
    toks: &'t [PyTok],
    pos: usize,
}

impl PyParser<'_> {
    fn peek(&self) -> Option<&PyKind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }

    fn line(&self) -> usize {
        self.toks.get(self.pos).or_else(|| self.toks.last()).map_or(0, |t| t.line)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(&PyKind::Punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("line {}: expected `{c}`, found {:?}", self.line(), self.peek()))
        }
    }

    /// One literal value: strings (adjacent ones joined), numbers, `True`/`False`/`None`, lists,
    /// tuples, dicts.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return Err(format!("line {}: nested too deep", self.line()));
        }
        let line = self.line();
        let Some(kind) = self.peek().cloned() else { return Err("the file ends inside a value".into()) };
        self.pos += 1;
        match kind {
            PyKind::Str(s) => {
                let mut s = s;
                while let Some(PyKind::Str(next)) = self.peek() {
                    s.push_str(next);
                    self.pos += 1;
                }
                Ok(Value::String(s))
            }
            PyKind::Num(n) => Ok(n),
            PyKind::Punct('-') => match self.value(depth + 1)? {
                Value::Number(n) => Ok(n
                    .as_i64()
                    .and_then(i64::checked_neg)
                    .map(Value::from)
                    .or_else(|| n.as_f64().and_then(|f| serde_json::Number::from_f64(-f)).map(Value::Number))
                    .unwrap_or(Value::Null)),
                _ => Err(format!("line {line}: `-` before something that is not a number")),
            },
            PyKind::Name(n) => match n.as_str() {
                "True" => Ok(Value::Bool(true)),
                "False" => Ok(Value::Bool(false)),
                "None" => Ok(Value::Null),
                other => Err(format!("line {line}: `{other}` is not a literal")),
            },
            PyKind::Punct('[') => Ok(Value::Array(self.items(']', depth)?.0)),
            PyKind::Punct('(') => {
                let (mut items, comma) = self.items(')', depth)?;
                // `("a" "b")` is a parenthesised value; `("a",)` a tuple.
                if items.len() == 1 && !comma {
                    Ok(items.remove(0))
                } else {
                    Ok(Value::Array(items))
                }
            }
            PyKind::Punct('{') => {
                let mut map = Map::new();
                loop {
                    if self.peek() == Some(&PyKind::Punct('}')) {
                        self.pos += 1;
                        return Ok(Value::Object(map));
                    }
                    let key = match self.value(depth + 1)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    self.expect(':')?;
                    let value = self.value(depth + 1)?;
                    map.insert(key, value);
                    if self.peek() == Some(&PyKind::Punct(',')) {
                        self.pos += 1;
                    } else {
                        self.expect('}')?;
                        return Ok(Value::Object(map));
                    }
                }
            }
            other => Err(format!("line {line}: {other:?} does not start a literal")),
        }
    }

    /// Comma-separated values up to `close`; whether a comma came after the last.
    fn items(&mut self, close: char, depth: usize) -> Result<(Vec<Value>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(&PyKind::Punct(close)) {
                self.pos += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            comma = self.peek() == Some(&PyKind::Punct(','));
            if comma {
                self.pos += 1;
            } else {
                self.expect(close)?;
                return Ok((items, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TABLE: &str = r#""""Internal API endpoint constant library."""

# A comment, then the table.
_things_endpoints = [
  [
    "queryThings",
    "GET",
    "/things/queries/things/v1?offset={}&limit={}",
    "List things. "
    'Second "half".\n',
    "things",
    [
      {
        "type": "integer",
        "default": 100,
        "maximum": 500,
        "minimum": 1,
        "name": "limit",
        "in": "query"
      },
      {
        "type": "string",
        "enum": ["uid|asc", "uid|desc"],
        "name": "sort",
        "in": "query",
      },
      {"type": "array", "items": {"type": "string"}, "collectionFormat": "multi", "name": "ids", "in": "query"},
      {"type": "array", "items": {"type": "integer"}, "name": "nums", "in": "query"},
      {"type": "boolean", "default": False, "name": "direct", "in": "query", "required": None},
      {"type": "string", "name": "user_uuid", "in": "query", "required": True},
    ]
  ],
  [
    "createThing", "POST", "/things/entities/things/v1", "Create.", "things",
    [{"name": "body", "in": "body", "required": True}]
  ],
  [
    "getThing", "GET", "/things/entities/things/{id}", "Get.", "things",
    [{"type": "integer", "name": "id", "in": "path", "required": True}]
  ],
  [
    "token", "POST", "/oauth2/token", "Token.", "oauth2",
    [
      {"type": "string", "name": "client_id", "in": "formData", "required": True},
      {"type": "string", "name": "client_secret", "in": "formData", "required": True},
      {"type": "integer", "name": "ttl", "in": "formData"}
    ]
  ],
  [
    "legacyThings", "GET", "/legacy/v1", "Deprecated : use queryThings.", "things", []
  ],
  [
    "LegacyThings", "GET", "/legacy/v1", "Get them.", "things", []
  ]
]
"#;

    const DEPRECATED: &str = r#""""Internal API endpoint constant library (deprecated operations)."""
_things_endpoints = [
  ["oldQueryThings", "GET", "/things/queries/things/v1", "Deprecated : old.", "things", []]
]
"#;

    const MODELS: &str = "// Code generated by go-swagger; DO NOT EDIT.\npackage models\n\
        type ThingCreate struct {\n\t// Required: true\n\tName *string `json:\"name\"`\n\tColour string `json:\"colour,omitempty\"`\n}\n\
        type Token struct {\n\tAccessToken string `json:\"access_token,omitempty\"`\n\tExpiresIn int64 `json:\"expires_in,omitempty\"`\n}\n";

    fn falcon() -> FalconPy {
        FalconPy::from_sources(&[("things.py", TABLE), ("deprecated_things.py", DEPRECATED)]).unwrap()
    }

    fn ex(method: &str, path: &str, query: &[(&str, &str)]) -> Exchange {
        Exchange {
            method: method.into(),
            path: path.into(),
            query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            status: 200,
            ..Exchange::default()
        }
    }

    #[test]
    fn python_literals_parse_with_concatenation_escapes_and_comments() {
        let ops = table_ops(TABLE, false).unwrap();
        assert_eq!(ops.len(), 6);
        assert_eq!(ops[0].template, "/things/queries/things/v1", "the query template is stripped");
        assert_eq!(ops[0].params.len(), 6);
        assert_eq!(ops[0].params[0].schema["maximum"], json!(500));
        assert!(ops[0].params[5].required && !ops[0].params[4].required);
        let toks =
            py_lex(r#"x = ["a" 'b', "\x41\u00e9\n\\\q", r"\d", (1), (2,), -3, 0x1F, 1.5e3, {"k": None,}]"#).unwrap();
        let value = PyParser { toks: &toks, pos: 2 }.value(0).unwrap();
        assert_eq!(value, json!(["ab", "Aé\n\\\\q", "\\d", 1, [2], -3, 31, 1500.0, {"k": null}]));
        for bad in [
            "x_endpoints = [",
            "x_endpoints = [\"a",
            "x_endpoints = [foo]",
            "x_endpoints = [[\"id\"]]",
            "y = 1",
            "'''",
            "x_endpoints = [[1, 2, 3]]",
        ] {
            assert!(table_ops(bad, false).is_err(), "{bad}");
        }
    }

    /// Python-ish soup: the lexer and parser end on anything (no panic, no endless loop).
    #[test]
    fn token_soup_neither_panics_nor_hangs() {
        let fragments = [
            "x_endpoints",
            "=",
            "[",
            "]",
            "(",
            ")",
            "{",
            "}",
            ",",
            ":",
            "\"a\"",
            "'b'",
            "\"\"\"",
            "r'\\'",
            "-",
            "1",
            "0x",
            "1e-",
            "True",
            "None",
            "#",
            "\n",
            "\\",
            "\"\\x4\"",
            "name",
            "==",
        ];
        let mut seed: u64 = 0xfa1c;
        for _ in 0..4000 {
            let mut src = String::new();
            for _ in 0..(seed % 16 + 1) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                src.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
            }
            let _ = FalconPy::from_sources(&[("soup.py", &src)]);
        }
    }

    #[test]
    fn parameters_are_checked_for_names_types_ranges_enums_and_repetition() {
        let f = falcon();
        let good = ex(
            "GET",
            "/things/queries/things/v1",
            &[
                ("user_uuid", "u"),
                ("limit", "500"),
                ("sort", "uid|asc"),
                ("ids", "a"),
                ("ids", "b"),
                ("nums", "1,2"),
                ("direct", "true"),
            ],
        );
        assert_eq!(f.check(&good), Ok("queryThings".into()), "the current table wins over the deprecated one");
        let bad = ex(
            "GET",
            "/things/queries/things/v1",
            &[("limit", "501"), ("sort", "name"), ("uid", "a@b.c"), ("nums", "1,x"), ("direct", "yes")],
        );
        let e = f.check(&bad).unwrap_err();
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(e.iter().all(|v| v.part == Part::Query));
        let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
        assert!(text.iter().any(|m| m.contains("`limit`=501 is above the maximum 500")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("`sort`=`name` is not one of")), "{text:?}");
        assert!(
            text.iter()
                .any(|m| m.contains("`uid` is not a query parameter of queryThings (GET /things/queries/things/v1)")),
            "{text:?}"
        );
        assert!(text.iter().any(|m| m.contains("`nums` must be an integer, got `x`")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("`direct` must be true or false")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("required query parameter `user_uuid` of queryThings")), "{text:?}");
        let twice = ex("GET", "/things/queries/things/v1", &[("user_uuid", "u"), ("nums", "1"), ("nums", "2")]);
        assert!(f.check(&twice).unwrap_err()[0].message.contains("not `collectionFormat: multi`"));
        assert_eq!(f.check(&ex("GET", "/things/entities/things/x", &[])).unwrap_err()[0].part, Part::PathParam);
        assert_eq!(f.check(&ex("GET", "/things/entities/things/7", &[])), Ok("getThing".into()));
        assert_eq!(
            f.check(&ex("GET", "/legacy/v1", &[])),
            Ok("LegacyThings".into()),
            "an entry not described as deprecated wins"
        );
        assert_eq!(f.check(&ex("GET", "/nothing", &[])).unwrap_err()[0].part, Part::Operation);
        assert!(f.check(&ex("PUT", "/legacy/v1", &[])).unwrap_err()[0].message.contains("no PUT operation"));
        assert!(
            f.has("GET", "/things/queries/things/v1") && !f.has("GET", "/things/queries/things/v1?offset={}&limit={}")
        );
        let only_old = FalconPy::from_sources(&[("deprecated_things.py", DEPRECATED)]).unwrap();
        assert_eq!(only_old.check(&ex("GET", "/things/queries/things/v1", &[])), Ok("oldQueryThings".into()));
    }

    #[test]
    fn bodies_need_an_attached_model_and_are_closed_against_it() {
        let models = GoModels::from_source("models.go", MODELS).unwrap();
        let mut post = ex("POST", "/things/entities/things/v1", &[]);
        post.body = Some(json!({"name": "n"}));
        let e = falcon().check(&post).unwrap_err();
        assert!(e[0].message.contains("createThing: no model to check the body against"), "{e:?}");

        let f = falcon().with_body_model("createThing", &models, "ThingCreate").unwrap();
        assert_eq!(f.check(&post), Ok("createThing".into()));
        post.body = Some(json!({"name": "n", "color": "red"}));
        let e = f.check(&post).unwrap_err();
        assert!(e[0].message.contains("`color` is not a field of ThingCreate"), "{e:?}");
        post.body = None;
        assert!(f.check(&post).unwrap_err()[0].message.contains("requires a body"));
        let mut get = ex("GET", "/things/entities/things/7", &[]);
        get.body = Some(json!({}));
        assert!(f.check(&get).unwrap_err()[0].message.contains("takes no body"));

        assert_eq!(
            falcon().with_body_model("nope", &models, "ThingCreate").unwrap_err(),
            SetupError::UnknownOperation("nope".into())
        );
        assert_eq!(
            falcon().with_body_model("getThing", &models, "ThingCreate").unwrap_err(),
            SetupError::NoBody("getThing".into())
        );
        assert_eq!(
            falcon().with_body_model("createThing", &models, "Nope").unwrap_err(),
            SetupError::UnknownModel("Nope".into())
        );
    }

    #[test]
    fn form_fields_are_read_from_the_encoded_body_and_never_echoed() {
        let models = GoModels::from_source("models.go", MODELS).unwrap();
        let f = falcon().with_response_model("token", 201, &models, "Token").unwrap();
        let mut token = ex("POST", "/oauth2/token", &[]);
        token.headers = vec![("content-type".into(), "application/x-www-form-urlencoded".into())];
        token.body = Some(json!("client_id=abc&client_secret=s%26cr+t"));
        token.status = 201;
        token.response = Some(json!({"access_token": "t", "expires_in": 1799}));
        assert_eq!(f.check(&token), Ok("token".into()));
        token.body = Some(json!("client_id=abc&grant_type=client_credentials&ttl=SECRETVALUE"));
        let e = f.check(&token).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e.iter().any(|v| v.message.contains("`grant_type` is not a form field of token (POST /oauth2/token)")),
            "{e:?}"
        );
        assert!(e.iter().any(|v| v.message.contains("required form field `client_secret`")), "{e:?}");
        assert!(e.iter().all(|v| !v.message.contains("SECRETVALUE")), "{e:?}");
        token.body = Some(json!("client_id=abc&client_secret=s"));
        token.status = 200;
        assert_eq!(f.check(&token).unwrap_err()[0].part, Part::Status, "a 2xx with no model when one is attached");
        token.status = 201;
        token.response = Some(json!({"access_token": "t", "expires_in": "1799", "scope": "x"}));
        let e = f.check(&token).unwrap_err();
        assert!(e.iter().any(|v| v.message.contains("/expires_in")), "{e:?}");
        token.status = 401;
        token.response = Some(json!({"errors": []}));
        assert!(f.check(&token).is_ok(), "no model attached for errors");
    }

    fn specs() -> PathBuf {
        crate::specs_dir().expect("the vendors' definitions (../shared/vendor-specs) must be present for these tests")
    }

    fn real() -> (FalconPy, GoModels) {
        let dir = specs().join("crowdstrike");
        let models = GoModels::load_dir(&dir.join("gofalcon")).unwrap();
        let falcon = FalconPy::load(&[
            dir.join("falconpy__endpoint__user_management.py"),
            dir.join("falconpy__endpoint__oauth2.py"),
            dir.join("falconpy__endpoint__deprecated__user_management.py"),
        ])
        .unwrap();
        (falcon, models)
    }

    #[test]
    fn the_published_user_management_table() {
        let (falcon, models) = real();
        assert!(falcon.has("GET", "/user-management/queries/users/v1"));
        assert!(falcon.has("POST", "/user-management/entities/users/GET/v1"));
        assert!(falcon.has("POST", "/oauth2/token"));
        // FINDINGS.md: the paths the old client called are in no table.
        for path in ["/users/queries/user-uids/v1", "/user-roles/queries/roles/v1"] {
            let e = falcon.check(&ex("GET", path, &[])).unwrap_err();
            assert_eq!(e[0].part, Part::Operation, "{path}");
        }
        let query = ex(
            "GET",
            "/user-management/queries/users/v1",
            &[("filter", "uid:'ada@example.com'"), ("offset", "0"), ("limit", "500")],
        );
        assert_eq!(falcon.check(&query), Ok("queryUserV1".into()));
        let e = falcon
            .check(&ex(
                "GET",
                "/user-management/queries/users/v1",
                &[("limit", "501"), ("offset", "-1"), ("sort", "email")],
            ))
            .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        let roles = ex("GET", "/user-management/queries/roles/v1", &[("user_uuid", "u1")]);
        assert_eq!(falcon.check(&roles), Ok("queriesRolesV1".into()));
        let entities = ex("GET", "/user-management/entities/roles/v1", &[("ids", "r1"), ("ids", "r2")]);
        assert_eq!(falcon.check(&entities), Ok("entitiesRolesV1".into()));
        // In both tables: the current one's entry.
        let grants = ex("GET", "/user-management/combined/user-roles/v1", &[("user_uuid", "u1"), ("limit", "500")]);
        assert_eq!(falcon.check(&grants), Ok("combinedUserRolesV1".into()));
        // The old revoke: `roleId` where the definition takes `ids`.
        let revoke = ex("DELETE", "/user-roles/entities/user-roles/v1", &[("user_uuid", "u1"), ("roleId", "r1")]);
        let e = falcon.check(&revoke).unwrap_err();
        assert!(
            e.iter().any(|v| v.message.contains("`roleId` is not a query parameter of RevokeUserRoleIds")),
            "{e:?}"
        );
        assert!(e.iter().any(|v| v.message.contains("required query parameter `ids`")), "{e:?}");

        let mut create = ex("POST", "/user-management/entities/users/v1", &[]);
        create.status = 201;
        create.body = Some(json!({"uid": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace"}));
        assert!(falcon.check(&create).unwrap_err()[0].message.contains("no model to check the body against"));
        let falcon = falcon
            .with_body_model("createUserV1", &models, "DomainUserCreateRequest")
            .unwrap()
            .with_body_model("updateUserV1", &models, "DomainUpdateUserFields")
            .unwrap()
            .with_body_model("GrantUserRoleIds", &models, "DomainRoleIDs")
            .unwrap()
            .with_response_model("oauth2AccessToken", 201, &models, "DomainAccessTokenResponseV1")
            .unwrap();
        assert_eq!(falcon.check(&create), Ok("createUserV1".into()));
        create.body = Some(json!({"username": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}));
        assert_eq!(falcon.check(&create).unwrap_err().len(), 3);
        let mut update = ex("PATCH", "/user-management/entities/users/v1", &[("user_uuid", "u1")]);
        update.body = Some(json!({"firstName": "Ada", "lastName": "King"}));
        assert_eq!(falcon.check(&update), Ok("updateUserV1".into()));
        // The old grant: `user_uuid` in the body where it is a query parameter.
        let mut grant = ex("POST", "/user-roles/entities/user-roles/v1", &[]);
        grant.body = Some(json!({"roleIds": ["r1"], "user_uuid": "u1"}));
        let e = falcon.check(&grant).unwrap_err();
        assert!(e.iter().any(|v| v.message.contains("required query parameter `user_uuid`")), "{e:?}");
        assert!(e.iter().any(|v| v.message.contains("`user_uuid` is not a field of DomainRoleIDs")), "{e:?}");

        let mut token = ex("POST", "/oauth2/token", &[]);
        token.body = Some(json!("client_id=id&client_secret=secret"));
        token.status = 201;
        token.response = Some(json!({"access_token": "t", "token_type": "bearer", "expires_in": 1799}));
        assert_eq!(falcon.check(&token), Ok("oauth2AccessToken".into()));
        token.body = Some(json!("client_id=id&client_secret=secret&grant_type=client_credentials"));
        assert!(falcon.check(&token).unwrap_err()[0].message.contains("`grant_type` is not a form field"));
    }
}
