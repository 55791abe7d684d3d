//! Pipedrive's official Node SDK (`pipedrive/client-nodejs`) as a [`Definition`].
//!
//! Pipedrive's v2 API is published as the OpenAPI document its SDK is generated from
//! (openapi-generator's `typescript-axios`), and that SDK is what we hold. Its code is regular
//! enough to read the definition back:
//! - each operation of an `…ApiAxiosParamCreator`: `opName: async (…): Promise<RequestArgs>`, its
//!   path template (`const localVarPath = \`/deals/{id}\``), its method (`{ method: 'PATCH', …}`),
//!   its query parameters (`localVarQueryParameter['owner_id'] = …`; an array repeated, or joined
//!   where the code joins it with `COLLECTION_FORMATS`), its body (`serializeDataIfNeeded(X, …)`)
//!   and, from the JSDoc above it, each parameter's type (`@param {number} [owner_id] …`:
//!   brackets mark an optional one; `'open' | 'won'` an enum) and the limits its text states
//!   ("a maximum value of 500 is allowed" → `maximum`; a comma-separated list "of up to 100
//!   entity ids" → at most 100 items, each item checked against the enum);
//! - the type each operation answers with, from the functional interface
//!   (`async getDeals(…): Promise<(axios?, basePath?) => Promise<GetDealsResponse>>`);
//! - the models (`export interface UpdateDealRequest { 'owner_id'?: number; … }`, `extends`,
//!   `type X = A & B`, `export const XConst = {…} as const` and `enum`s as enums).
//!
//! An exchange is judged by: the operation for its method and path (relative to the API
//! version's root, e.g. `/deals/7` for `/api/v2/deals/7`; the most literal template wins); no
//! query parameter the operation does not set, each of its JSDoc type, enum and limits, repeated
//! only for an array, every required one present; path parameters typed; the body closed against
//! its model (fields the model declares, required ones present, types, enums, `| null` for null),
//! and when the model's file is not loaded, a violation naming the missing model, so no body
//! passes unchecked (likewise a model it references); a body where the operation takes none, or
//! a form body, is a violation.
//!
//! Responses: a 2xx body is checked against the operation's response model, closed, when that
//! model's file is loaded (models it references that are not loaded are accepted there, unseen),
//! or against the model a test names with [`TsSdk::with_response_model`]; otherwise a 2xx answer
//! is taken on its status alone, its body unchecked. Error statuses are not checked (the SDK
//! declares no error shapes, and says nothing of which 2xx an operation answers with). Where the generated type cannot carry what the vendor documents
//! (`next_cursor` "will be `null`" but typed `string`), [`TsSdk::allow_null`] says so.

mod models;
mod syntax;
#[cfg(test)]
mod tests;

use crate::operation::{self, List, Operations, Param, Place, Repeats};
pub use crate::SetupError;
use crate::{pairs, read_labelled, Definition, Exchange, LoadError, Part, Verdict, Violation};
use models::{Missing, TsModels};
use regex::Regex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use syntax::{parse_type_text, TsDef, TsType};

/// The operations of an SDK's API files and the models of its model files.
#[derive(Clone, Debug)]
pub struct TsSdk {
    /// Most literal templates first.
    ops: Operations<ApiCall>,
    models: TsModels,
}

type Operation = operation::Operation<ApiCall>;

/// What an operation's code says beyond its parameters (each a JSDoc-typed [`Param`]; an
/// array is repeated, or joined where the code joins it, and a string the JSDoc calls a "comma
/// separated" list is split at commas).
#[derive(Clone, Debug)]
struct ApiCall {
    body: Option<Body>,
    /// Fields the code puts in a form body (`localVarFormParams`).
    form: Vec<String>,
    /// The type the SDK resolves a success with.
    response: Option<String>,
    /// A test's choice of model for the 2xx body, and top-level keys it also allows (see
    /// [`TsSdk::with_response_model`]).
    response_override: Option<(String, Vec<String>)>,
}

#[derive(Clone, Debug)]
struct Body {
    ty: String,
    required: bool,
}

/// Only the first repetition is named: the count is what [`Param::max_items`] is checked on.
const REPEATS: Repeats = Repeats { takes_once: "takes it once", each: false };

impl TsSdk {
    /// `api_files`: `…_api_*.ts` of one API version (their paths are relative to its root);
    /// `model_files`: the `…_models_*.ts` we hold.
    pub fn load<A: AsRef<Path>, M: AsRef<Path>>(api_files: &[A], model_files: &[M]) -> Result<Self, LoadError> {
        let apis = read_labelled(api_files)?;
        let models = read_labelled(model_files)?;
        Self::from_sources(&pairs(&apis), &pairs(&models))
    }

    /// From `(label, TypeScript source)` pairs (a test's fixtures).
    pub fn from_sources(apis: &[(&str, &str)], models: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut m = TsModels::default();
        for (label, text) in models {
            m.add(label, text).map_err(|message| LoadError::Parse { path: PathBuf::from(label), message })?;
        }
        let mut ops: Vec<(Operation, &str)> = Vec::new();
        for (label, text) in apis {
            let found =
                api_operations(text, &m).map_err(|message| LoadError::Parse { path: PathBuf::from(label), message })?;
            for op in found {
                if let Some((other, file)) =
                    ops.iter().find(|(o, _)| o.method == op.method && o.template == op.template)
                {
                    return Err(LoadError::Parse {
                        path: PathBuf::from(label),
                        message: format!(
                            "{} is also {} in {file}: load each API version separately",
                            op.label(),
                            other.id
                        ),
                    });
                }
                ops.push((op, label));
            }
        }
        if ops.is_empty() {
            let path = PathBuf::from(apis.first().map_or("", |(l, _)| l));
            return Err(LoadError::Parse {
                path,
                message: "no operations (`opName: async (…): Promise<RequestArgs>`) found".into(),
            });
        }
        Ok(TsSdk { ops: Operations::new(ops.into_iter().map(|(o, _)| o).collect()), models: m })
    }

    /// Whether the SDK has `method` at `template` (for tests that name what must exist).
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.has(method, template)
    }

    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.ops.ids()
    }

    /// Models that the loaded ones, or the operations' bodies and answers, name but that are not
    /// loaded.
    pub fn missing_models(&self) -> BTreeSet<String> {
        let mut out = self.models.missing();
        for op in self.ops.iter() {
            for name in op.vendor.body.iter().map(|b| &b.ty).chain(&op.vendor.response) {
                if !self.models.defs.contains_key(name) {
                    out.insert(name.clone());
                }
            }
        }
        out
    }

    /// Every way `value` leaves the model `model` (closed; a referenced model that is not
    /// loaded is an error).
    pub fn errors(&self, model: &str, value: &Value) -> Vec<String> {
        if !self.models.defs.contains_key(model) {
            return vec![format!("no model {model} among those loaded")];
        }
        self.models.check(&TsType::Named(model.into()), value, Missing::Error, &[])
    }

    /// Checks 2xx bodies of `operation` (its id, or `METHOD /template`) against `model`, closed,
    /// except for the top-level keys in `also` (whose values are not checked): for an answer
    /// whose own model file we do not hold but a part of it we do (`GetDealsResponse` is the
    /// base response's `success` with `GetDealsResponseAllOf`: name the latter, and `success`).
    pub fn with_response_model(mut self, operation: &str, model: &str, also: &[&str]) -> Result<Self, SetupError> {
        if !self.models.defs.contains_key(model) {
            return Err(SetupError::UnknownModel(model.into()));
        }
        let op = self.ops.named_mut(operation)?;
        op.vendor.response_override = Some((model.into(), also.iter().map(|k| (*k).to_owned()).collect()));
        Ok(self)
    }

    /// Lets `field` of `model` be null where the vendor documents null but the generated type
    /// does not say `| null`.
    pub fn allow_null(mut self, model: &str, field: &str) -> Result<Self, SetupError> {
        let Some((TsDef::Object(obj), _)) = self.models.defs.get(model) else {
            return Err(SetupError::UnknownModel(model.into()));
        };
        if !obj.props.iter().any(|p| p.name == field) {
            return Err(SetupError::UnknownField { model: model.into(), field: field.into() });
        }
        self.models.null_ok.insert((model.into(), field.into()));
        Ok(self)
    }

    fn check_body(&self, op: &Operation, ex: &Exchange) -> Vec<Violation> {
        if !op.vendor.form.is_empty() {
            return match ex.body.as_ref().filter(|b| !b.is_null()) {
                Some(_) => vec![Violation::new(
                    Part::RequestBody,
                    format!("{} takes a form body, which this check cannot read", op.id),
                )],
                None => vec![],
            };
        }
        let (spec, body) = match op.sent_body(ex, op.vendor.body.as_ref().map(|b| (b, b.required))) {
            Ok(sent) => sent,
            Err(verdict) => return verdict,
        };
        if !self.models.defs.contains_key(&spec.ty) {
            return vec![Violation::new(
                Part::RequestBody,
                format!("{}: its body's model {} is not loaded, so the body cannot be checked", op.id, spec.ty),
            )];
        }
        self.models
            .check(&TsType::Named(spec.ty.clone()), body, Missing::Error, &[])
            .into_iter()
            .map(|e| Violation::new(Part::RequestBody, format!("{} body ({}) {e}", op.id, spec.ty)))
            .collect()
    }

    fn check_response(&self, op: &Operation, ex: &Exchange) -> Vec<Violation> {
        if !(200..300).contains(&ex.status) {
            return vec![];
        }
        let (model, also) = match (&op.vendor.response_override, &op.vendor.response) {
            (Some((m, also)), _) => (m, also.as_slice()),
            (None, Some(m)) if self.models.defs.contains_key(m) => (m, &[][..]),
            _ => return vec![],
        };
        op.check_answer(ex, Some((model, model.clone())), |model, body, _| {
            self.models.check(&TsType::Named(model.clone()), body, Missing::Accept, also)
        })
    }
}

impl Definition for TsSdk {
    fn check(&self, ex: &Exchange) -> Verdict {
        self.ops.judge(ex, &REPEATS, |op| self.check_body(op, ex), |op| self.check_response(op, ex))
    }
}

// ---------------------------------------------------------------------------------------------
// API files

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
}

/// The operations of one API file's param creator, typed from their JSDoc.
fn api_operations(text: &str, models: &TsModels) -> Result<Vec<Operation>, String> {
    static START: OnceLock<Regex> = OnceLock::new();
    static PATH: OnceLock<Regex> = OnceLock::new();
    static METHOD: OnceLock<Regex> = OnceLock::new();
    static QUERY: OnceLock<Regex> = OnceLock::new();
    static BODY: OnceLock<Regex> = OnceLock::new();
    static FORM: OnceLock<Regex> = OnceLock::new();
    static ANSWER: OnceLock<Regex> = OnceLock::new();
    let start = regex(&START, r"(?m)^[ \t]*(\w+): async \((.*)\): Promise<RequestArgs> => \{[ \t]*$");
    let path = regex(&PATH, r"localVarPath = `([^`]*)`");
    let method = regex(&METHOD, r"method: '(\w+)'");
    let query = regex(&QUERY, r"localVarQueryParameter\['([^']+)'\]\s*=\s*([^;\n]*)");
    let body = regex(&BODY, r"serializeDataIfNeeded\((\w+),");
    let form = regex(&FORM, r"localVarFormParams\.(?:append|set)\('([^']+)'");
    let answer = regex(
        &ANSWER,
        r"(?m)^[ \t]*async (\w+)\(.*\): Promise<\(axios\?: AxiosInstance, basePath\?: string\) => Promise<(.+)>> \{",
    );

    let creator_start = text.find("AxiosParamCreator = function").ok_or("no `…AxiosParamCreator`")?;
    // The functional interface (`export const DealsApiFp = function`) names the answers' types.
    let creator_end = text[creator_start..].find("Fp = function").map_or(text.len(), |i| creator_start + i);
    let creator = &text[creator_start..creator_end];
    let answers: BTreeMap<&str, &str> = answer
        .captures_iter(&text[creator_end..])
        .filter_map(|c| Some((c.get(1)?.as_str(), c.get(2)?.as_str())))
        .collect();

    let starts: Vec<regex::Captures> = start.captures_iter(creator).collect();
    let mut ops = Vec::new();
    for (n, caps) in starts.iter().enumerate() {
        let (Some(whole), Some(id), Some(signature)) = (caps.get(0), caps.get(1), caps.get(2)) else { continue };
        let id = id.as_str();
        let code_end = starts.get(n + 1).and_then(|c| c.get(0)).map_or(creator.len(), |m| m.start());
        let code = &creator[whole.end()..code_end];
        let doc = jsdoc_before(&creator[..whole.start()]);
        let params = jsdoc_params(doc);
        let signature = signature_params(signature.as_str());

        let template =
            path.captures(code).and_then(|c| c.get(1)).ok_or_else(|| format!("{id}: no `localVarPath`"))?.as_str();
        let verb = method.captures(code).and_then(|c| c.get(1)).ok_or_else(|| format!("{id}: no `method`"))?.as_str();
        let declared = |name: &str| -> (Option<&JsDocParam>, Option<&(String, bool, String)>) {
            (params.iter().find(|p| p.name == name), signature.iter().find(|(n, _, _)| n == name))
        };
        let param = |name: &str, joined: Option<char>| -> Param {
            let (doc, sig) = declared(name);
            let ty_text = doc.map(|d| d.ty.as_str()).or(sig.map(|(_, _, t)| t.as_str())).unwrap_or("string");
            let required = match (doc, sig) {
                (Some(d), _) => !d.optional,
                (None, Some((_, optional, _))) => !optional,
                (None, None) => false,
            };
            let description = doc.map_or("", |d| d.description.as_str());
            query_param(name, ty_text, description, required, joined, models)
        };

        let mut op = Operation {
            id: id.to_owned(),
            method: verb.to_ascii_uppercase(),
            template: template.to_owned(),
            params: Vec::new(),
            vendor: ApiCall {
                body: None,
                form: form.captures_iter(code).filter_map(|c| c.get(1)).map(|m| m.as_str().to_owned()).collect(),
                response: answers.get(id).map(|t| t.trim().to_owned()).filter(|t| t != "void"),
                response_override: None,
            },
        };
        for c in query.captures_iter(code) {
            let (Some(name), Some(expr)) = (c.get(1), c.get(2)) else { continue };
            let joined = expr.as_str().contains("COLLECTION_FORMATS").then(|| match expr.as_str() {
                e if e.contains(".ssv") => ' ',
                e if e.contains(".tsv") => '\t',
                e if e.contains(".pipes") => '|',
                _ => ',',
            });
            if op.param(Place::Query, name.as_str()).is_none() {
                op.params.push(param(name.as_str(), joined));
            }
        }
        for name in template.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            op.params.push(Param { place: Place::Path, ..param(name, None) });
        }
        if let Some(arg) = body.captures(code).and_then(|c| c.get(1)) {
            let (doc, sig) = declared(arg.as_str());
            let ty =
                doc.map(|d| d.ty.clone()).or(sig.map(|(_, _, t)| t.clone())).unwrap_or_else(|| arg.as_str().to_owned());
            let required = match (doc, sig) {
                (Some(d), _) => !d.optional,
                (None, Some((_, optional, _))) => !optional,
                (None, None) => false,
            };
            op.vendor.body = Some(Body { ty, required });
        }
        ops.push(op);
    }
    Ok(ops)
}

/// The `/** … */` that ends where `before` ends (whitespace aside).
fn jsdoc_before(before: &str) -> &str {
    let trimmed = before.trim_end();
    if !trimmed.ends_with("*/") {
        return "";
    }
    match trimmed.rfind("/**") {
        Some(i) => &trimmed[i..],
        None => "",
    }
}

#[derive(Debug)]
struct JsDocParam {
    ty: String,
    name: String,
    optional: bool,
    description: String,
}

/// `@param {number} [owner_id] If supplied, …` lines. The type may hold braces
/// (`{ [key: string]: any; }`), so it is read to its matching brace.
fn jsdoc_params(doc: &str) -> Vec<JsDocParam> {
    let mut out = Vec::new();
    for line in doc.lines() {
        let line = line.trim().trim_start_matches('*').trim();
        let Some(rest) = line.strip_prefix("@param") else { continue };
        let rest = rest.trim_start();
        let Some(inner) = rest.strip_prefix('{') else { continue };
        let mut depth = 1;
        let Some(end) = inner.char_indices().find_map(|(i, c)| {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        }) else {
            continue;
        };
        let ty = inner[..end].trim().to_owned();
        let rest = inner[end + 1..].trim_start();
        let (name, optional, description) = match rest.strip_prefix('[') {
            Some(r) => {
                let close = r.find(']').unwrap_or(r.len());
                let name = r[..close].split('=').next().unwrap_or_default().trim();
                (name.to_owned(), true, r.get(close + 1..).unwrap_or_default().trim().to_owned())
            }
            None => {
                let (name, desc) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                (name.to_owned(), false, desc.trim().to_owned())
            }
        };
        out.push(JsDocParam { ty, name, optional, description });
    }
    out
}

/// `id: number, ids?: string, status?: 'open' | 'won', ` as (name, optional, type).
fn signature_params(signature: &str) -> Vec<(String, bool, String)> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in signature.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '<' | '{' | '(' | '[') => depth += 1,
            (None, '>' | '}' | ')' | ']') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&signature[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&signature[start..]);
    parts
        .into_iter()
        .filter_map(|p| {
            let (name, ty) = p.split_once(':')?;
            let name = name.trim();
            let (name, optional) = match name.strip_suffix('?') {
                Some(n) => (n, true),
                None => (name, false),
            };
            Some((name.trim().to_owned(), optional, ty.trim().to_owned()))
        })
        .collect()
}

/// A parameter's JSDoc type and text as a scalar schema, with the limits the text states.
fn query_param(
    name: &str,
    ty_text: &str,
    description: &str,
    required: bool,
    joined: Option<char>,
    models: &TsModels,
) -> Param {
    static MAXIMUM: OnceLock<Regex> = OnceLock::new();
    static ITEMS: OnceLock<Regex> = OnceLock::new();
    let maximum = regex(&MAXIMUM, r"(?i)\bmaximum value of (\d+)");
    let items = regex(&ITEMS, r"(?i)\b(?:up to|maximum of|maximum)\s+(\d+)\s+(?:[a-z]+\s+)?(?:ids|keys|items)\b");

    let ty = parse_type_text(ty_text);
    let (item, list) = match &ty {
        TsType::Array(inner) => ((**inner).clone(), joined.map_or(List::Repeated, List::Joined)),
        other if description.to_lowercase().replace('-', " ").contains("comma separated") => {
            (other.clone(), List::Joined(','))
        }
        other => (other.clone(), List::Single),
    };
    let mut schema = scalar_schema(&item, models);
    if let (Some(n), Value::Object(o)) = (maximum.captures(description).and_then(|c| c.get(1)), &mut schema) {
        if matches!(o.get("type").and_then(Value::as_str), Some("number" | "integer")) {
            o.insert("maximum".into(), json!(n.as_str().parse::<u64>().unwrap_or(u64::MAX)));
        }
    }
    let max_items = match list {
        List::Single => None,
        _ => items.captures(description).and_then(|c| c.get(1)).and_then(|n| n.as_str().parse().ok()),
    };
    Param { list, max_items, ..Param::new(name, Place::Query, schema, required) }
}

/// What a parameter's text must be: the type, and an enum for literal unions and enum models.
fn scalar_schema(ty: &TsType, models: &TsModels) -> Value {
    match ty {
        TsType::String => json!({"type": "string"}),
        TsType::Number => json!({"type": "number"}),
        TsType::Boolean => json!({"type": "boolean"}),
        TsType::Literal(v) => json!({"type": literal_type(v), "enum": [v]}),
        TsType::Union(branches) => {
            let literals: Vec<&Value> =
                branches.iter().filter_map(|b| if let TsType::Literal(v) = b { Some(v) } else { None }).collect();
            if literals.len() == branches.len() && !literals.is_empty() {
                let types: BTreeSet<&str> = literals.iter().map(|v| literal_type(v)).collect();
                let mut schema = json!({"enum": literals});
                if types.len() == 1 {
                    schema["type"] = json!(types.into_iter().next());
                }
                schema
            } else {
                json!({})
            }
        }
        TsType::Named(n) => match models.defs.get(n) {
            Some((TsDef::Enum(values), _)) => json!({"enum": values}),
            Some((TsDef::Alias(inner), _)) => scalar_schema(inner, models),
            _ => json!({"type": "string"}),
        },
        _ => json!({}),
    }
}

fn literal_type(v: &Value) -> &'static str {
    match v {
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        _ => "string",
    }
}
