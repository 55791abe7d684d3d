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

mod table;

use crate::gosdk::GoModels;
use crate::operation::{self, List, Operations, Place, Repeats};
use crate::schema::Strictness;
pub use crate::SetupError;
use crate::{check_scalar, kind, Definition, Exchange, LoadError, Part, Verdict, Violation};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use table::table_ops;

/// FalconPy's endpoint tables, with the gofalcon models a test attaches.
#[derive(Clone, Debug)]
pub struct FalconPy {
    /// Most literal templates first; then current tables before deprecated ones, in load order.
    ops: Operations<Entry>,
}

type Operation = operation::Operation<Entry>;

/// What a table entry says beyond its parameters, and the models a test attaches to it.
#[derive(Clone, Debug)]
struct Entry {
    /// From a table of deprecated operations (FalconPy's `_deprecated` modules).
    legacy_table: bool,
    /// The description starts "Deprecated".
    deprecated: bool,
    body_model: Option<Model>,
    responses: Vec<(u16, Model)>,
}

/// A gofalcon model attached to an operation's body or response.
#[derive(Clone, Debug)]
struct Model {
    models: Arc<GoModels>,
    type_name: String,
}

/// Swagger 2's word for an array sent repeatedly.
const REPEATS: Repeats = Repeats { takes_once: "takes it once (not `collectionFormat: multi`)", each: true };

impl FalconPy {
    /// Reads FalconPy endpoint table files (`falconpy__endpoint__user_management.py`, …). A file
    /// whose name or module docstring says "deprecated" holds the legacy entries.
    pub fn load<P: AsRef<Path>>(table_paths: &[P]) -> Result<Self, LoadError> {
        let mut texts = Vec::new();
        for p in table_paths {
            let path = p.as_ref();
            texts.push((path.to_owned(), crate::read(path)?));
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
        // Stable: within a rank, load order stays (and [`Operations::new`] keeps this order).
        ops.sort_by_key(|o| {
            (std::cmp::Reverse(crate::literal_segments(&o.template)), o.vendor.legacy_table, o.vendor.deprecated)
        });
        FalconPy { ops: Operations::new(ops) }
    }

    /// Whether a table has `method` at `template` (query template stripped), e.g.
    /// `has("GET", "/user-management/queries/users/v1")`.
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.has(method, template)
    }

    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.ops.ids()
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
            op.vendor.body_model = Some(model.clone());
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
            op.vendor.responses.retain(|(s, _)| *s != status);
            op.vendor.responses.push((status, model.clone()));
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

    fn check_body(op: &Operation, ex: &Exchange) -> Vec<Violation> {
        if op.params_in(Place::FormData).next().is_some() {
            return Self::check_form(op, ex, ex.body.as_ref().filter(|b| !b.is_null()));
        }
        let body = match op.sent_body(ex, op.params_in(Place::Body).next().map(|p| (p, p.required))) {
            Ok((_, body)) => body,
            Err(verdict) => return verdict,
        };
        let Some(model) = &op.vendor.body_model else {
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
                    format!("{} takes a form, the body is {}", op.id, kind(other)),
                ));
                return out;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &fields {
            let Some(p) = op.param(Place::FormData, name) else {
                out.push(Violation::new(Part::RequestBody, format!("`{name}` is not a form field of {}", op.label())));
                continue;
            };
            if seen.contains(&name.as_str()) && p.list == List::Single {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("the form field `{name}` of {} is sent more than once", op.id),
                ));
            }
            seen.push(name);
            if check_scalar(name, value, &p.schema).is_err() {
                let ty = p.schema["type"].as_str().unwrap_or("string");
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
        let Some((_, model)) = op.vendor.responses.iter().find(|(s, _)| *s == ex.status) else {
            let declared: Vec<String> = op
                .vendor
                .responses
                .iter()
                .filter(|(s, _)| (200..300).contains(s))
                .map(|(s, _)| s.to_string())
                .collect();
            return if (200..300).contains(&ex.status) && !declared.is_empty() {
                vec![op.unanswered(ex.status, format!("its models are for {}", declared.join(", ")))]
            } else {
                vec![]
            };
        };
        op.check_answer(ex, Some((model, model.type_name.clone())), |m, body, strictness| {
            m.models.errors_with(&m.type_name, body, strictness)
        })
    }
}

impl Definition for FalconPy {
    fn check(&self, ex: &Exchange) -> Verdict {
        self.ops.judge(ex, &REPEATS, |op| Self::check_body(op, ex), |op| Self::check_response(op, ex))
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

#[cfg(test)]
mod tests;
