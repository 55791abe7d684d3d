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

pub use crate::gosdk::SetupError;
use crate::schema::Strictness;
use crate::{
    check_scalar, literal_segments, match_template, read, Definition, Exchange, LoadError, Part, Verdict, Violation,
};
use regex::Regex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const MAX_DEPTH: usize = 64;

/// The operations of an SDK's API files and the models of its model files.
#[derive(Clone, Debug)]
pub struct TsSdk {
    /// Most literal templates first.
    ops: Vec<Operation>,
    models: TsModels,
}

#[derive(Clone, Debug)]
struct Operation {
    id: String,
    method: String,
    template: String,
    query: Vec<Param>,
    path: Vec<Param>,
    body: Option<Body>,
    /// Fields the code puts in a form body (`localVarFormParams`).
    form: Vec<String>,
    /// The type the SDK resolves a success with.
    response: Option<String>,
    /// A test's choice of model for the 2xx body, and top-level keys it also allows (see
    /// [`TsSdk::with_response_model`]).
    response_override: Option<(String, Vec<String>)>,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} ({} {})", self.id, self.method, self.template)
    }
}

#[derive(Clone, Debug)]
struct Param {
    name: String,
    /// A scalar schema for [`check_scalar`] (each item's for a list).
    schema: Value,
    required: bool,
    list: List,
    /// At most this many values (items of a list, repetitions of an array), per the JSDoc.
    max_items: Option<usize>,
}

/// How a parameter carries several values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Single,
    /// An array: `?ids=1&ids=2` (the generator's `setSearchParams` appends each item).
    Repeated,
    /// An array the code joins (`COLLECTION_FORMATS.csv`): one value, items split by this.
    Joined(char),
    /// A string the JSDoc calls a "comma separated" list: items split by commas.
    CommaText,
}

#[derive(Clone, Debug)]
struct Body {
    ty: String,
    required: bool,
}

impl TsSdk {
    /// `api_files`: `…_api_*.ts` of one API version (their paths are relative to its root);
    /// `model_files`: the `…_models_*.ts` we hold.
    pub fn load<A: AsRef<Path>, M: AsRef<Path>>(api_files: &[A], model_files: &[M]) -> Result<Self, LoadError> {
        let read_all = |files: Vec<&Path>| -> Result<Vec<(String, String)>, LoadError> {
            files.into_iter().map(|p| Ok((p.display().to_string(), read(p)?))).collect()
        };
        let apis = read_all(api_files.iter().map(AsRef::as_ref).collect())?;
        let models = read_all(model_files.iter().map(AsRef::as_ref).collect())?;
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
        let mut ops: Vec<Operation> = ops.into_iter().map(|(o, _)| o).collect();
        ops.sort_by_key(|o| std::cmp::Reverse(literal_segments(&o.template)));
        Ok(TsSdk { ops, models: m })
    }

    /// Whether the SDK has `method` at `template` (for tests that name what must exist).
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.iter().any(|o| o.method.eq_ignore_ascii_case(method) && o.template == template)
    }

    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().map(|o| o.id.as_str())
    }

    /// Models that the loaded ones, or the operations' bodies and answers, name but that are not
    /// loaded.
    pub fn missing_models(&self) -> BTreeSet<String> {
        let mut out = self.models.missing();
        for op in &self.ops {
            for name in op.body.iter().map(|b| &b.ty).chain(&op.response) {
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
        let op = self
            .ops
            .iter_mut()
            .find(|o| o.id == operation || format!("{} {}", o.method, o.template) == operation)
            .ok_or_else(|| SetupError::UnknownOperation(operation.into()))?;
        op.response_override = Some((model.into(), also.iter().map(|k| (*k).to_owned()).collect()));
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

    fn check_query(op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, value) in &ex.query {
            let Some(p) = op.query.iter().find(|p| &p.name == name) else {
                out.push(Violation::new(Part::Query, format!("`{name}` is not a query parameter of {}", op.label())));
                continue;
            };
            let count = seen.entry(name.as_str()).or_default();
            *count += 1;
            if *count == 2 && p.list != List::Repeated {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{name}` is sent more than once but {} takes it once", op.id),
                ));
            }
            let values: Vec<&str> = match p.list {
                List::Joined(sep) => value.split(sep).collect(),
                List::CommaText => value.split(',').collect(),
                List::Single | List::Repeated => vec![value],
            };
            if let Some(max) = p.max_items.filter(|m| values.len() > *m) {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{name}` lists {} items, more than the {max} {} allows", values.len(), op.id),
                ));
            }
            for v in values {
                if let Err(e) = check_scalar(name, v, &p.schema) {
                    out.push(Violation::new(Part::Query, format!("{e} ({})", op.id)));
                }
            }
        }
        for p in &op.query {
            let sent = seen.get(p.name.as_str()).copied().unwrap_or(0);
            if p.required && sent == 0 {
                out.push(Violation::new(
                    Part::Query,
                    format!("the required query parameter `{}` of {} is missing", p.name, op.id),
                ));
            }
            if let Some(max) = p.max_items.filter(|m| p.list == List::Repeated && sent > *m) {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{}` is sent {sent} times, more than the {max} {} allows", p.name, op.id),
                ));
            }
        }
        out
    }

    fn check_body(&self, op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let sent = ex.body.as_ref().filter(|b| !b.is_null());
        if !op.form.is_empty() {
            return match sent {
                Some(_) => vec![Violation::new(
                    Part::RequestBody,
                    format!("{} takes a form body, which this check cannot read", op.id),
                )],
                None => vec![],
            };
        }
        let Some(spec) = &op.body else {
            return match sent {
                Some(_) => {
                    vec![Violation::new(Part::RequestBody, format!("{} takes no body, one was sent", op.label()))]
                }
                None => vec![],
            };
        };
        let Some(body) = sent else {
            return if spec.required {
                vec![Violation::new(Part::RequestBody, format!("{} requires a body and none was sent", op.id))]
            } else {
                vec![]
            };
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
        let (model, also) = match (&op.response_override, &op.response) {
            (Some((m, also)), _) => (m, also.as_slice()),
            (None, Some(m)) if self.models.defs.contains_key(m) => (m, &[][..]),
            _ => return vec![],
        };
        let Some(body) = ex.response.as_ref().filter(|b| !b.is_null()) else {
            return vec![Violation::new(
                Part::ResponseBody,
                format!("{} answers {} with {model}, no body was sent", op.id, ex.status),
            )];
        };
        self.models
            .check(&TsType::Named(model.clone()), body, Missing::Accept, also)
            .into_iter()
            .map(|e| Violation::new(Part::ResponseBody, format!("{} {} ({model}) {e}", op.id, ex.status)))
            .collect()
    }
}

impl Definition for TsSdk {
    fn check(&self, ex: &Exchange) -> Verdict {
        let mut path_matched = false;
        for op in &self.ops {
            let Some(values) = match_template(&op.template, &ex.path) else { continue };
            path_matched = true;
            if !op.method.eq_ignore_ascii_case(&ex.method) {
                continue;
            }
            let mut violations = Vec::new();
            for (name, value) in &values {
                if let Some(p) = op.path.iter().find(|p| &p.name == name) {
                    if let Err(e) = check_scalar(name, value, &p.schema) {
                        violations.push(Violation::new(Part::PathParam, format!("{e} ({})", op.id)));
                    }
                }
            }
            violations.extend(Self::check_query(op, ex));
            violations.extend(self.check_body(op, ex));
            violations.extend(self.check_response(op, ex));
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

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(l, t)| (l.as_str(), t.as_str())).collect()
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
            query: Vec::new(),
            path: Vec::new(),
            body: None,
            form: form.captures_iter(code).filter_map(|c| c.get(1)).map(|m| m.as_str().to_owned()).collect(),
            response: answers.get(id).map(|t| t.trim().to_owned()).filter(|t| t != "void"),
            response_override: None,
        };
        for c in query.captures_iter(code) {
            let (Some(name), Some(expr)) = (c.get(1), c.get(2)) else { continue };
            let joined = expr.as_str().contains("COLLECTION_FORMATS").then(|| match expr.as_str() {
                e if e.contains(".ssv") => ' ',
                e if e.contains(".tsv") => '\t',
                e if e.contains(".pipes") => '|',
                _ => ',',
            });
            if !op.query.iter().any(|p| p.name == name.as_str()) {
                op.query.push(param(name.as_str(), joined));
            }
        }
        for name in template.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            op.path.push(param(name, None));
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
            op.body = Some(Body { ty, required });
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
            (other.clone(), List::CommaText)
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
    Param { name: name.to_owned(), schema, required, list, max_items }
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

// ---------------------------------------------------------------------------------------------
// Types and models

#[derive(Clone, Debug, PartialEq)]
enum TsType {
    String,
    Number,
    Boolean,
    Any,
    Null,
    Undefined,
    /// `object`: any object.
    Object,
    Literal(Value),
    Array(Box<TsType>),
    /// `{ [key: string]: T }`, `Record<string, T>`.
    Map(Box<TsType>),
    Named(String),
    Union(Vec<TsType>),
    Intersection(Vec<TsType>),
    Inline(Box<TsObject>),
}

impl TsType {
    fn describe(&self) -> String {
        match self {
            TsType::String => "a string".into(),
            TsType::Number => "a number".into(),
            TsType::Boolean => "a boolean".into(),
            TsType::Any => "anything".into(),
            TsType::Null => "null".into(),
            TsType::Undefined => "undefined".into(),
            TsType::Object | TsType::Map(_) | TsType::Inline(_) => "an object".into(),
            TsType::Literal(v) => v.to_string(),
            TsType::Array(_) => "an array".into(),
            TsType::Named(n) => n.clone(),
            TsType::Union(b) => b.iter().map(TsType::describe).collect::<Vec<_>>().join(" | "),
            TsType::Intersection(b) => b.iter().map(TsType::describe).collect::<Vec<_>>().join(" & "),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
struct TsObject {
    props: Vec<Prop>,
    /// `[key: string]: T`: other keys allowed, with values of T.
    index: Option<TsType>,
    extends: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct Prop {
    name: String,
    ty: TsType,
    optional: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum TsDef {
    Object(TsObject),
    Alias(TsType),
    /// `export const XConst = {…} as const` or `export enum X {…}`: the values.
    Enum(Vec<Value>),
}

/// Whether a model a value references but that is not loaded fails it (request bodies: nothing
/// passes unchecked) or is accepted unseen (answers, which a test reads only in part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missing {
    Error,
    Accept,
}

#[derive(Clone, Debug, Default)]
struct TsModels {
    /// Each model with the file it came from.
    defs: BTreeMap<String, (TsDef, String)>,
    /// `(model, field)` pairs that may be null though their type does not say so.
    null_ok: BTreeSet<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
enum TsTok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn ts_lex(src: &str) -> Vec<TsTok> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == Some('/') => {
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                i += 2;
                while at(i).is_some() && !(at(i) == Some('*') && at(i + 1) == Some('/')) {
                    i += 1;
                }
                i += 2;
            }
            '\'' | '"' | '`' => {
                let mut s = String::new();
                i += 1;
                while let Some(ch) = at(i) {
                    if ch == c {
                        break;
                    }
                    if ch == '\\' {
                        if let Some(e) = at(i + 1) {
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        i += 2;
                        continue;
                    }
                    s.push(ch);
                    i += 1;
                }
                i += 1;
                out.push(TsTok::Str(s));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    i += 1;
                }
                out.push(TsTok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
                    i += 1;
                }
                out.push(TsTok::Num(chars[start..i].iter().collect()));
            }
            other => {
                out.push(TsTok::Punct(other));
                i += 1;
            }
        }
    }
    out
}

struct TsParser<'t> {
    toks: &'t [TsTok],
    pos: usize,
}

impl TsParser<'_> {
    fn peek(&self) -> Option<&TsTok> {
        self.toks.get(self.pos)
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&TsTok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        let yes = matches!(self.peek(), Some(TsTok::Ident(w)) if w == word);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn ident(&mut self) -> Option<String> {
        match self.peek() {
            Some(TsTok::Ident(w)) => {
                let w = w.clone();
                self.pos += 1;
                Some(w)
            }
            _ => None,
        }
    }

    /// Past the bracket closing the one just consumed.
    fn skip_balanced(&mut self, open: char, close: char) {
        let mut depth = 1usize;
        while let Some(t) = self.peek().cloned() {
            self.pos += 1;
            if t == TsTok::Punct(open) {
                depth += 1;
            } else if t == TsTok::Punct(close) {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
        }
    }

    fn union(&mut self, depth: usize) -> TsType {
        if depth > MAX_DEPTH {
            return TsType::Any;
        }
        self.eat_punct('|');
        let mut branches = vec![self.intersection(depth + 1)];
        while self.eat_punct('|') {
            branches.push(self.intersection(depth + 1));
        }
        if branches.len() == 1 {
            branches.remove(0)
        } else {
            TsType::Union(branches)
        }
    }

    fn intersection(&mut self, depth: usize) -> TsType {
        self.eat_punct('&');
        let mut parts = vec![self.postfix(depth + 1)];
        while self.eat_punct('&') {
            parts.push(self.postfix(depth + 1));
        }
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            TsType::Intersection(parts)
        }
    }

    fn postfix(&mut self, depth: usize) -> TsType {
        let mut ty = self.primary(depth + 1);
        while self.is_punct('[') && self.toks.get(self.pos + 1) == Some(&TsTok::Punct(']')) {
            self.pos += 2;
            ty = TsType::Array(Box::new(ty));
        }
        ty
    }

    fn generic_args(&mut self, depth: usize) -> Vec<TsType> {
        let mut args = Vec::new();
        if self.eat_punct('<') {
            loop {
                args.push(self.union(depth + 1));
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.eat_punct('>');
        }
        args
    }

    fn primary(&mut self, depth: usize) -> TsType {
        let Some(tok) = self.peek().cloned() else { return TsType::Any };
        self.pos += 1;
        match tok {
            TsTok::Str(s) => TsType::Literal(Value::String(s)),
            TsTok::Num(n) => TsType::Literal(number(&n)),
            TsTok::Punct('-') => match self.peek().cloned() {
                Some(TsTok::Num(n)) => {
                    self.pos += 1;
                    TsType::Literal(number(&format!("-{n}")))
                }
                _ => TsType::Any,
            },
            TsTok::Punct('(') => {
                let inner = self.union(depth + 1);
                self.eat_punct(')');
                inner
            }
            TsTok::Punct('{') => self.object_members(depth + 1),
            TsTok::Ident(word) => match word.as_str() {
                "string" => TsType::String,
                "number" | "bigint" => TsType::Number,
                "boolean" => TsType::Boolean,
                "true" => TsType::Literal(Value::Bool(true)),
                "false" => TsType::Literal(Value::Bool(false)),
                "any" | "unknown" => TsType::Any,
                "null" => TsType::Null,
                "undefined" | "void" => TsType::Undefined,
                "object" => TsType::Object,
                // Sent as JSON, a Date is its ISO string.
                "Date" => TsType::String,
                "Array" | "ReadonlyArray" | "Set" => {
                    TsType::Array(Box::new(self.generic_args(depth).into_iter().next().unwrap_or(TsType::Any)))
                }
                "Record" | "Map" => {
                    TsType::Map(Box::new(self.generic_args(depth).into_iter().nth(1).unwrap_or(TsType::Any)))
                }
                // `typeof X[keyof typeof X]` (the enum idiom): the const's values say it.
                "typeof" | "keyof" => {
                    let _ = self.primary(depth + 1);
                    if self.eat_punct('[') {
                        self.skip_balanced('[', ']');
                    }
                    TsType::Any
                }
                _ => {
                    let mut name = word;
                    while self.is_punct('.') && matches!(self.toks.get(self.pos + 1), Some(TsTok::Ident(_))) {
                        self.pos += 1;
                        name = self.ident().unwrap_or(name);
                    }
                    let _ = self.generic_args(depth);
                    TsType::Named(name)
                }
            },
            _ => TsType::Any,
        }
    }

    /// After `{`: properties and index signatures up to the closing brace.
    fn object_members(&mut self, depth: usize) -> TsType {
        let mut obj = TsObject::default();
        self.members(&mut obj, depth);
        match (obj.props.is_empty(), obj.index.take()) {
            (true, Some(index)) => TsType::Map(Box::new(index)),
            (_, index) => {
                obj.index = index;
                TsType::Inline(Box::new(obj))
            }
        }
    }

    fn members(&mut self, obj: &mut TsObject, depth: usize) {
        loop {
            while self.eat_punct(';') || self.eat_punct(',') {}
            match self.peek().cloned() {
                None => return,
                Some(TsTok::Punct('}')) => {
                    self.pos += 1;
                    return;
                }
                Some(TsTok::Punct('[')) => {
                    // `[key: string]: T`
                    self.pos += 1;
                    self.skip_balanced('[', ']');
                    self.eat_punct(':');
                    obj.index = Some(self.union(depth + 1));
                }
                Some(TsTok::Ident(_) | TsTok::Str(_)) => {
                    self.eat_ident("readonly");
                    let name = match self.peek().cloned() {
                        Some(TsTok::Ident(n) | TsTok::Str(n)) => {
                            self.pos += 1;
                            n
                        }
                        _ => continue,
                    };
                    let optional = self.eat_punct('?');
                    if !self.eat_punct(':') {
                        // A method or something else we do not read: to the member's end.
                        while let Some(t) = self.peek() {
                            if matches!(t, TsTok::Punct(';' | '}')) {
                                break;
                            }
                            self.pos += 1;
                        }
                        continue;
                    }
                    let ty = self.union(depth + 1);
                    obj.props.push(Prop { name, ty, optional });
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// After `{` of `const X = {` or `enum X {`: the values (`k: 'v'` or `K = 'v'`).
    fn enum_values(&mut self) -> Vec<Value> {
        let mut values = Vec::new();
        let mut depth = 1usize;
        while let Some(t) = self.peek().cloned() {
            self.pos += 1;
            match t {
                TsTok::Punct('{') => depth += 1,
                TsTok::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        return values;
                    }
                }
                TsTok::Punct(':' | '=') if depth == 1 => match self.peek().cloned() {
                    Some(TsTok::Str(s)) => values.push(Value::String(s)),
                    Some(TsTok::Num(n)) => values.push(number(&n)),
                    _ => {}
                },
                _ => {}
            }
        }
        values
    }
}

fn number(n: &str) -> Value {
    n.parse::<i64>()
        .map(Value::from)
        .ok()
        .or_else(|| n.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number))
        .unwrap_or(Value::Null)
}

fn parse_type_text(text: &str) -> TsType {
    let toks = ts_lex(text);
    TsParser { toks: &toks, pos: 0 }.union(0)
}

impl TsModels {
    /// The models of one file: `interface`s, `type` aliases, `const … as const` and `enum`s.
    fn add(&mut self, label: &str, text: &str) -> Result<(), String> {
        let toks = ts_lex(text);
        let mut p = TsParser { toks: &toks, pos: 0 };
        let mut depth = 0usize;
        while let Some(t) = p.peek().cloned() {
            p.pos += 1;
            let TsTok::Ident(word) = t else {
                match t {
                    TsTok::Punct('{') => depth += 1,
                    TsTok::Punct('}') => depth = depth.saturating_sub(1),
                    _ => {}
                }
                continue;
            };
            if depth > 0 {
                continue;
            }
            let def = match word.as_str() {
                "interface" => {
                    let Some(name) = p.ident() else { continue };
                    let _ = p.generic_args(0);
                    let mut obj = TsObject::default();
                    if p.eat_ident("extends") {
                        loop {
                            if let TsType::Named(n) = p.postfix(0) {
                                obj.extends.push(n);
                            }
                            if !p.eat_punct(',') {
                                break;
                            }
                        }
                    }
                    if !p.eat_punct('{') {
                        return Err(format!("interface {name}: no body"));
                    }
                    p.members(&mut obj, 0);
                    Some((name, TsDef::Object(obj)))
                }
                "type" => {
                    let Some(name) = p.ident() else { continue };
                    let _ = p.generic_args(0);
                    if !p.eat_punct('=') {
                        continue;
                    }
                    // `type XConst = typeof XConst[keyof typeof XConst]`: the const defines it.
                    let of_const = matches!(p.peek(), Some(TsTok::Ident(w)) if w == "typeof");
                    let ty = p.union(0);
                    p.eat_punct(';');
                    (!of_const).then_some((name, TsDef::Alias(ty)))
                }
                "const" => {
                    let Some(name) = p.ident() else { continue };
                    if p.eat_punct('=') && p.eat_punct('{') {
                        let values = p.enum_values();
                        if p.eat_ident("as") && p.eat_ident("const") {
                            Some((name, TsDef::Enum(values)))
                        } else {
                            None
                        }
                    } else {
                        None
                    }
                }
                "enum" => {
                    let Some(name) = p.ident() else { continue };
                    if p.eat_punct('{') {
                        Some((name, TsDef::Enum(p.enum_values())))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((name, def)) = def {
                if let Some((_, source)) = self.defs.get(&name) {
                    return Err(format!("the model {name} is defined twice ({source} and {label})"));
                }
                self.defs.insert(name, (def, label.to_owned()));
            }
        }
        Ok(())
    }

    fn missing(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (def, _) in self.defs.values() {
            match def {
                TsDef::Object(obj) => self.missing_in_object(obj, &mut out),
                TsDef::Alias(ty) => self.missing_in(ty, &mut out),
                TsDef::Enum(_) => {}
            }
        }
        out
    }

    fn missing_in_object(&self, obj: &TsObject, out: &mut BTreeSet<String>) {
        for e in &obj.extends {
            if !self.defs.contains_key(e) {
                out.insert(e.clone());
            }
        }
        for ty in obj.props.iter().map(|p| &p.ty).chain(&obj.index) {
            self.missing_in(ty, out);
        }
    }

    fn missing_in(&self, ty: &TsType, out: &mut BTreeSet<String>) {
        match ty {
            TsType::Named(n) if !self.defs.contains_key(n) => {
                out.insert(n.clone());
            }
            TsType::Array(t) | TsType::Map(t) => self.missing_in(t, out),
            TsType::Union(b) | TsType::Intersection(b) => b.iter().for_each(|t| self.missing_in(t, out)),
            TsType::Inline(obj) => self.missing_in_object(obj, out),
            _ => {}
        }
    }

    /// `root_extra`: top-level keys allowed beside the model's (see [`TsSdk::with_response_model`]).
    fn check(&self, ty: &TsType, value: &Value, missing: Missing, root_extra: &[String]) -> Vec<String> {
        let mut v = TsValidator { models: self, strictness: Strictness::Closed, missing, root_extra, out: Vec::new() };
        v.value(ty, value, "", 0);
        v.out
    }

    /// Whether null fits `ty`.
    fn admits_null(&self, ty: &TsType, depth: usize) -> bool {
        match ty {
            TsType::Null | TsType::Any => true,
            TsType::Union(b) => b.iter().any(|t| self.admits_null(t, depth + 1)),
            TsType::Named(n) if depth < MAX_DEPTH => match self.defs.get(n) {
                Some((TsDef::Alias(inner), _)) => self.admits_null(inner, depth + 1),
                Some((TsDef::Enum(values), _)) => values.contains(&Value::Null),
                _ => false,
            },
            _ => false,
        }
    }
}

struct TsValidator<'m> {
    models: &'m TsModels,
    /// Open only for the parts of an intersection that are not all objects.
    strictness: Strictness,
    missing: Missing,
    root_extra: &'m [String],
    out: Vec<String>,
}

fn shown(at: &str) -> &str {
    if at.is_empty() {
        "/"
    } else {
        at
    }
}

impl TsValidator<'_> {
    fn mismatch(&mut self, ty: &TsType, v: &Value, at: &str) {
        self.out.push(format!("at {}: expected {}, got {}", shown(at), ty.describe(), crate::gosdk::kind(v)));
    }

    fn value(&mut self, ty: &TsType, v: &Value, at: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.out.push(format!("at {}: nested deeper than {MAX_DEPTH} levels, not checked further", shown(at)));
            return;
        }
        match ty {
            TsType::Any => {}
            TsType::String if v.is_string() => {}
            TsType::Number if v.is_number() => {}
            TsType::Boolean if v.is_boolean() => {}
            TsType::Null if v.is_null() => {}
            TsType::Object if v.is_object() || v.is_array() => {}
            TsType::Literal(l) if l == v => {}
            TsType::Array(inner) => match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(inner, item, &format!("{at}/{i}"), depth + 1);
                    }
                }
                _ => self.mismatch(ty, v, at),
            },
            TsType::Map(inner) => match v {
                Value::Object(map) => {
                    for (k, item) in map {
                        self.value(inner, item, &format!("{at}/{k}"), depth + 1);
                    }
                }
                _ => self.mismatch(ty, v, at),
            },
            TsType::Named(n) => self.named(n, v, at, depth),
            TsType::Inline(obj) => {
                self.object("an inline object", &[("an inline object".into(), obj.as_ref().clone())], v, at, depth)
            }
            TsType::Union(branches) => self.union(ty, branches, v, at, depth),
            TsType::Intersection(parts) => {
                let mut objects = Vec::new();
                for part in parts {
                    match self.resolve_object(part, depth) {
                        Some(o) => objects.push(o),
                        None => {
                            // Not all parts are objects: each part on its own, keys open.
                            let mut each = TsValidator { strictness: Strictness::Open, out: Vec::new(), ..*self };
                            each.value(part, v, at, depth + 1);
                            self.out.extend(each.out);
                        }
                    }
                }
                if !objects.is_empty() {
                    self.object(&ty.describe(), &objects, v, at, depth);
                }
            }
            TsType::Literal(l) => self.out.push(format!("at {}: expected {l}, got {v}", shown(at))),
            TsType::String | TsType::Number | TsType::Boolean | TsType::Null | TsType::Undefined | TsType::Object => {
                self.mismatch(ty, v, at)
            }
        }
    }

    /// An intersection's part as (its name, its object), if it is one.
    fn resolve_object(&self, ty: &TsType, depth: usize) -> Option<(String, TsObject)> {
        match ty {
            TsType::Inline(obj) => Some(("an inline object".into(), obj.as_ref().clone())),
            TsType::Named(n) if depth < MAX_DEPTH => match self.models.defs.get(n) {
                Some((TsDef::Object(obj), _)) => Some((n.clone(), obj.clone())),
                Some((TsDef::Alias(inner), _)) => self.resolve_object(inner, depth + 1),
                _ => None,
            },
            _ => None,
        }
    }

    fn union(&mut self, ty: &TsType, branches: &[TsType], v: &Value, at: &str, depth: usize) {
        let mut fitting = Vec::new();
        for b in branches {
            let mut trial = TsValidator { out: Vec::new(), ..*self };
            trial.value(b, v, at, depth + 1);
            if trial.out.is_empty() {
                return;
            }
            fitting.push((b, trial.out));
        }
        // `T | null` with a value that is not null: T's own complaints are the useful ones.
        let real: Vec<_> =
            fitting.into_iter().filter(|(b, _)| !matches!(b, TsType::Null | TsType::Undefined)).collect();
        if real.len() == 1 && !v.is_null() {
            self.out.extend(real.into_iter().flat_map(|(_, out)| out));
        } else {
            self.mismatch(ty, v, at);
        }
    }

    fn named(&mut self, name: &str, v: &Value, at: &str, depth: usize) {
        let models = self.models;
        match models.defs.get(name) {
            None if self.missing == Missing::Accept => {}
            None => self.out.push(format!(
                "at {}: {name} is not among the loaded models, so this value cannot be checked",
                shown(at)
            )),
            Some((TsDef::Object(obj), _)) => self.object(name, &[(name.to_owned(), obj.clone())], v, at, depth),
            Some((TsDef::Alias(inner), _)) => self.value(inner, v, at, depth + 1),
            Some((TsDef::Enum(values), _)) => {
                if !values.contains(v) {
                    self.out.push(format!(
                        "at {}: {v} is not one of {} ({name})",
                        shown(at),
                        Value::Array(values.clone())
                    ));
                }
            }
        }
    }

    /// `parts`: one interface, or the parts of an intersection (their properties united), each
    /// with its name (a property's owner, in messages and for [`TsSdk::allow_null`]).
    fn object(&mut self, name: &str, parts: &[(String, TsObject)], v: &Value, at: &str, depth: usize) {
        let Value::Object(map) = v else {
            self.out.push(format!("at {}: expected {name} (an object), got {}", shown(at), crate::gosdk::kind(v)));
            return;
        };
        let models = self.models;
        let mut props: Vec<(&str, &Prop)> = Vec::new();
        let mut index: Option<&TsType> = None;
        let mut complete = true;
        let mut pending: Vec<(&str, &TsObject)> = parts.iter().map(|(owner, o)| (owner.as_str(), o)).collect();
        let mut guard = 0;
        while let Some((owner, obj)) = pending.pop() {
            guard += 1;
            if guard > MAX_DEPTH {
                break;
            }
            for p in &obj.props {
                if !props.iter().any(|(_, q)| q.name == p.name) {
                    props.push((owner, p));
                }
            }
            index = index.or(obj.index.as_ref());
            for e in &obj.extends {
                match models.defs.get(e) {
                    Some((TsDef::Object(parent), _)) => pending.push((e.as_str(), parent)),
                    _ => {
                        complete = false;
                        if self.missing == Missing::Error {
                            self.out.push(format!("at {}: {name} extends {e}, which is not loaded", shown(at)));
                        }
                    }
                }
            }
        }
        for (k, item) in map {
            let here = format!("{at}/{k}");
            match props.iter().find(|(_, p)| &p.name == k) {
                Some((owner, p)) => {
                    if item.is_null() && !models.admits_null(&p.ty, 0) {
                        if !models.null_ok.contains(&(owner.to_string(), k.clone())) {
                            self.out.push(format!("at {here}: `{k}` of {owner} may not be null"));
                        }
                        continue;
                    }
                    self.value(&p.ty, item, &here, depth + 1);
                }
                None => match index {
                    Some(ty) => self.value(ty, item, &here, depth + 1),
                    None if at.is_empty() && self.root_extra.contains(k) => {}
                    None if self.strictness == Strictness::Closed && complete => {
                        self.out.push(format!("at {}: `{k}` is not a field of {name}", shown(at)));
                    }
                    None => {}
                },
            }
        }
        for (owner, p) in &props {
            if !p.optional && !map.contains_key(&p.name) {
                self.out.push(format!("at {}: the required field `{}` of {owner} is missing", shown(at), p.name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = r#"
import { DUMMY_BASE_URL } from '../common';
export const ThingsApiAxiosParamCreator = function (configuration?: Configuration) {
    return {
        /**
         * Returns things.
         * @summary Get all things
         * @param {number} [owner_id] If supplied, only things owned by the user
         * @param {'open' | 'won' | 'lost'} [status] Only this status. Multiple statuses can be included as a comma separated array.
         * @param {string} [ids] Optional comma separated string array of up to 3 entity ids to fetch.
         * @param {Array<number>} [tag_ids] Tags. A maximum of 2 tag IDs can be provided.
         * @param {0 | 1} [exact] Exact match.
         * @param {number} [limit] For pagination. Please note that a maximum value of 500 is allowed.
         * @param {string} term The term
         * @throws {RequiredError}
         */
        getThings: async (owner_id?: number, status?: 'open' | 'won' | 'lost', ids?: string, tag_ids?: Array<number>, exact?: 0 | 1, limit?: number, term: string, ): Promise<RequestArgs> => {
            const localVarPath = `/things`;
            const localVarRequestOptions = { method: 'GET', ...baseOptions };
            if (owner_id !== undefined) {
                localVarQueryParameter['owner_id'] = owner_id;
            }
            if (status !== undefined) {
                localVarQueryParameter['status'] = status;
            }
            if (ids !== undefined) {
                localVarQueryParameter['ids'] = ids;
            }
            if (tag_ids) {
                localVarQueryParameter['tag_ids'] = tag_ids;
            }
            if (exact !== undefined) {
                localVarQueryParameter['exact'] = exact;
            }
            if (limit !== undefined) {
                localVarQueryParameter['limit'] = limit;
            }
            if (term !== undefined) {
                localVarQueryParameter['term'] = term;
            }
        },
        /**
         * @summary Update a thing
         * @param {number} id The ID of the thing
         * @param {UpdateThingRequest} [UpdateThingRequest] 
         * @throws {RequiredError}
         */
        updateThing: async (id: number, UpdateThingRequest?: UpdateThingRequest, ): Promise<RequestArgs> => {
            const localVarPath = `/things/{id}`
                .replace(`{${"id"}}`, encodeURIComponent(String(id)));
            const localVarRequestOptions = { method: 'PATCH', ...baseOptions };
            localVarRequestOptions.data = serializeDataIfNeeded(UpdateThingRequest, localVarRequestOptions, configuration)
        },
        /**
         * @param {AddThingRequest} AddThingRequest 
         */
        addThing: async (AddThingRequest: AddThingRequest, ): Promise<RequestArgs> => {
            const localVarPath = `/things`;
            const localVarRequestOptions = { method: 'POST', ...baseOptions };
            localVarRequestOptions.data = serializeDataIfNeeded(AddThingRequest, localVarRequestOptions, configuration)
        },
        /**
         */
        getMine: async (): Promise<RequestArgs> => {
            const localVarPath = `/things/mine`;
            const localVarRequestOptions = { method: 'GET', ...baseOptions };
        },
    }
};
export const ThingsApiFp = function(configuration?: Configuration) {
    const localVarAxiosParamCreator = ThingsApiAxiosParamCreator(configuration)
    return {
        async getThings(owner_id?: number, status?: 'open' | 'won' | 'lost', ): Promise<(axios?: AxiosInstance, basePath?: string) => Promise<GetThingsResponse>> {
        },
        async updateThing(id: number, UpdateThingRequest?: UpdateThingRequest, ): Promise<(axios?: AxiosInstance, basePath?: string) => Promise<ThingResponse>> {
        },
    }
};
"#;

    const MODELS: &str = r#"
// @ts-ignore
import { Owner } from './owner';
/**
 * @export
 * @interface UpdateThingRequest
 */
export interface UpdateThingRequest {
    /**
    * The title
    * @type {string}
    */
    'title'?: string;
    'owner_id'?: number;
    'probability'?: number | null;
    'label_ids'?: Array<number>;
    'custom_fields'?: { [key: string]: any | undefined; };
    'colour'?: ThingColourConst;
    'owner'?: Owner;
}
export const ThingColourConst = {
    red: 'red',
    blue: 'blue'
} as const;
export type ThingColourConst = typeof ThingColourConst[keyof typeof ThingColourConst];

export interface ThingData {
    'id': number;
    'next_cursor'?: string;
}
export interface ThingResponse extends Base {
    'data'?: ThingData;
}
export interface Base {
    'success': boolean;
}
export type Both = Base & ThingData;
"#;

    fn sdk() -> TsSdk {
        TsSdk::from_sources(&[("things-api.ts", API)], &[("models.ts", MODELS)]).unwrap()
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
    fn operations_and_their_jsdoc_types_and_limits() {
        let s = sdk();
        assert!(
            s.has("GET", "/things")
                && s.has("PATCH", "/things/{id}")
                && s.has("POST", "/things")
                && s.has("GET", "/things/mine")
        );
        let ok = ex(
            "GET",
            "/things",
            &[
                ("term", "a"),
                ("owner_id", "7"),
                ("status", "open,won"),
                ("ids", "1,2,3"),
                ("tag_ids", "1"),
                ("tag_ids", "2"),
                ("exact", "1"),
                ("limit", "500"),
            ],
        );
        assert_eq!(s.check(&ok), Ok("getThings".into()));
        let bad = ex(
            "GET",
            "/things",
            &[
                ("user_id", "7"),
                ("status", "open,all"),
                ("ids", "1,2,3,4"),
                ("tag_ids", "x"),
                ("tag_ids", "2"),
                ("tag_ids", "3"),
                ("exact", "true"),
                ("limit", "501"),
                ("owner_id", "1"),
                ("owner_id", "2"),
            ],
        );
        let e = s.check(&bad).unwrap_err();
        let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(e.len(), 9, "{text:#?}");
        for want in [
            "`user_id` is not a query parameter of getThings (GET /things)",
            "`status`=`all` is not one of",
            "`ids` lists 4 items, more than the 3 getThings allows",
            "`tag_ids` must be a number, got `x`",
            "`tag_ids` is sent 3 times, more than the 2 getThings allows",
            "`exact` must be a number, got `true`",
            "`limit`=501 is above the maximum 500",
            "`owner_id` is sent more than once",
            "the required query parameter `term` of getThings is missing",
        ] {
            assert!(text.iter().any(|m| m.contains(want)), "{want}: {text:#?}");
        }
        assert_eq!(s.check(&ex("GET", "/things/mine", &[])), Ok("getMine".into()), "the most literal template wins");
        assert_eq!(s.check(&ex("PATCH", "/things/x", &[])).unwrap_err()[0].part, Part::PathParam);
        assert!(s.check(&ex("PUT", "/things/1", &[])).unwrap_err()[0].message.contains("no PUT operation"));
        assert_eq!(s.check(&ex("GET", "/nothing", &[])).unwrap_err()[0].part, Part::Operation);
    }

    #[test]
    fn bodies_are_closed_against_their_model_or_refused_without_one() {
        let s = sdk();
        let mut patch = ex("PATCH", "/things/7", &[]);
        patch.response = Some(json!({"success": true}));
        patch.body = Some(
            json!({"owner_id": 8, "probability": null, "label_ids": [1], "custom_fields": {"abc": [1]}, "colour": "red"}),
        );
        assert_eq!(s.check(&patch), Ok("updateThing".into()));
        patch.body = Some(json!({"user_id": 8, "title": null, "colour": "green", "label_ids": ["a"]}));
        let e = s.check(&patch).unwrap_err();
        let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(e.len(), 4, "{text:#?}");
        assert!(text.iter().any(|m| m.contains("`user_id` is not a field of UpdateThingRequest")), "{text:#?}");
        assert!(text.iter().any(|m| m.contains("`title` of UpdateThingRequest may not be null")), "{text:#?}");
        assert!(
            text.iter().any(|m| m.contains("\"green\" is not one of [\"red\",\"blue\"] (ThingColourConst)")),
            "{text:#?}"
        );
        assert!(text.iter().any(|m| m.contains("at /label_ids/0: expected a number, got a string")), "{text:#?}");
        patch.body = Some(json!({"owner": {"id": 1}}));
        assert!(s.check(&patch).unwrap_err()[0].message.contains("Owner is not among the loaded models"));
        patch.body = None;
        assert!(s.check(&patch).is_ok(), "the JSDoc marks the body optional");

        let mut post = ex("POST", "/things", &[]);
        assert!(s.check(&post).unwrap_err()[0].message.contains("requires a body"));
        post.body = Some(json!({"title": "t"}));
        assert!(s.check(&post).unwrap_err()[0].message.contains("its body's model AddThingRequest is not loaded"));
        let mut get = ex("GET", "/things/mine", &[]);
        get.body = Some(json!({}));
        assert!(s.check(&get).unwrap_err()[0].message.contains("takes no body"));
        assert_eq!(
            s.missing_models(),
            BTreeSet::from(["AddThingRequest".into(), "GetThingsResponse".into(), "Owner".into()])
        );
    }

    #[test]
    fn responses_are_checked_when_their_model_is_loaded_or_named() {
        let s = sdk();
        let mut patch = ex("PATCH", "/things/7", &[]);
        patch.response = Some(json!({"success": true, "data": {"id": 7}}));
        assert!(s.check(&patch).is_ok(), "ThingResponse extends Base");
        patch.response = Some(json!({"success": true, "data": {"id": 7, "owner": 1}, "extra": 1}));
        let e = s.check(&patch).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|v| v.part == Part::ResponseBody));
        patch.response = Some(json!({"data": {"id": 7}}));
        assert!(s.check(&patch).unwrap_err()[0].message.contains("required field `success` of Base"));
        patch.status = 404;
        patch.response = Some(json!({"success": false, "error": "not found"}));
        assert!(s.check(&patch).is_ok(), "error answers are not checked");

        // GetThingsResponse is not loaded: only the status says anything.
        let mut get = ex("GET", "/things", &[("term", "a")]);
        get.response = Some(json!({"anything": true}));
        assert!(s.check(&get).is_ok());
        let s = s.with_response_model("getThings", "Both", &[]).unwrap();
        get.response = Some(json!({"success": true, "id": 1, "next_cursor": null}));
        assert!(s.check(&get).unwrap_err()[0].message.contains("`next_cursor` of ThingData may not be null"));
        let s = s.allow_null("ThingData", "next_cursor").unwrap();
        assert_eq!(s.check(&get), Ok("getThings".into()));
        get.response = Some(json!({"success": true, "id": 1, "more": 2}));
        assert!(s.check(&get).unwrap_err()[0].message.contains("`more` is not a field of Base & ThingData"));
        assert_eq!(
            s.clone().allow_null("ThingData", "nope").unwrap_err(),
            SetupError::UnknownField { model: "ThingData".into(), field: "nope".into() }
        );
        assert_eq!(
            s.clone().with_response_model("nope", "Both", &[]).unwrap_err(),
            SetupError::UnknownOperation("nope".into())
        );
        assert_eq!(
            s.with_response_model("getThings", "Nope", &[]).unwrap_err(),
            SetupError::UnknownModel("Nope".into())
        );
    }

    #[test]
    fn odd_sources_do_not_panic() {
        for text in [
            "",
            "export interface",
            "export interface X {",
            "export interface X { 'a'?: Array<",
            "export const X = {",
            "'unterminated",
            "/* open",
            "type X = | ;",
        ] {
            let _ = TsSdk::from_sources(&[("a.ts", API)], &[("m.ts", text)]);
            let _ = TsSdk::from_sources(&[("a.ts", text)], &[]);
        }
        assert!(TsSdk::from_sources(&[("a.ts", "export const x = 1;")], &[]).is_err());
        let twice = TsSdk::from_sources(&[("a.ts", API), ("b.ts", API)], &[]).unwrap_err();
        assert!(twice.to_string().contains("load each API version separately"), "{twice}");
    }

    /// TypeScript-ish soup: the model and type parsers end on anything.
    #[test]
    fn token_soup_neither_panics_nor_hangs() {
        let fragments = [
            "export",
            "interface",
            "type",
            "const",
            "enum",
            "X",
            "extends",
            "{",
            "}",
            "<",
            ">",
            "[",
            "]",
            "(",
            ")",
            "|",
            "&",
            ";",
            ",",
            ":",
            "?",
            "=",
            "'a'",
            "1",
            "-",
            "Array",
            "typeof",
            "keyof",
            "as",
            "null",
            "/*",
            "//",
            "\n",
        ];
        let mut seed: u64 = 0x75;
        for _ in 0..4000 {
            let mut src = String::new();
            for _ in 0..(seed % 16 + 1) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                src.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
                src.push(' ');
            }
            if let Ok(s) = TsSdk::from_sources(&[("a.ts", API)], &[("soup.ts", &src)]) {
                let _ = s.errors("X", &json!({"a": [1, null]}));
            }
            let _ = parse_type_text(&src);
        }
    }

    fn specs() -> PathBuf {
        crate::specs_dir().expect("the vendors' definitions (../shared/vendor-specs) must be present for these tests")
    }

    #[test]
    fn pipedrive_v2_deals_from_the_published_sdk() {
        let dir = specs().join("pipedrive/client-nodejs-32.2.1");
        let v2 = TsSdk::load(
            &[dir.join("src_versions_v2_api_deals-api.ts")],
            &[
                dir.join("src_versions_v2_models_update-deal-request.ts"),
                dir.join("src_versions_v2_models_get-deals-response-all-of.ts"),
                dir.join("src_versions_v2_models_get-activities-response-all-of-additional-data.ts"),
            ],
        )
        .unwrap();
        assert!(v2.has("GET", "/deals") && v2.has("PATCH", "/deals/{id}") && v2.has("GET", "/deals/{id}"));
        assert!(!v2.has("PUT", "/deals/{id}"), "v2 updates with PATCH");
        let list = ex("GET", "/deals", &[("owner_id", "7"), ("status", "open"), ("limit", "500"), ("cursor", "eyJ")]);
        assert_eq!(v2.check(&list), Ok("getDeals".into()));
        let v1_style =
            ex("GET", "/deals", &[("user_id", "7"), ("status", "all_not_deleted"), ("start", "0"), ("limit", "501")]);
        let e = v2.check(&v1_style).unwrap_err();
        let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(e.len(), 4, "{text:#?}");
        assert!(text.iter().any(|m| m.contains("`user_id` is not a query parameter of getDeals")), "{text:#?}");
        assert!(text.iter().any(|m| m.contains("`start` is not a query parameter")), "{text:#?}");
        assert!(text.iter().any(|m| m.contains("maximum 500")), "{text:#?}");

        let mut update = ex("PATCH", "/deals/7", &[]);
        update.body = Some(json!({"owner_id": 8}));
        assert_eq!(v2.check(&update), Ok("updateDeal".into()));
        update.body = Some(json!({"user_id": 8}));
        assert!(v2.check(&update).unwrap_err()[0].message.contains("`user_id` is not a field of UpdateDealRequest"));
        // UpsertDealResponse is not in the copy: the answer's status is all that is checked.
        update.body = Some(json!({"owner_id": 8}));
        update.response = Some(json!({"success": true, "data": {"id": 7, "owner_id": 8}}));
        assert!(v2.check(&update).is_ok());

        let mut page = list.clone();
        page.response = Some(
            json!({"success": true, "data": [{"id": 1, "owner_id": 7}], "additional_data": {"next_cursor": null}}),
        );
        assert!(v2.check(&page).is_ok(), "GetDealsResponse is not in the copy");
        let v2 = v2.with_response_model("getDeals", "GetDealsResponseAllOf", &["success"]).unwrap();
        assert!(v2.check(&page).unwrap_err()[0]
            .message
            .contains("`next_cursor` of GetActivitiesResponseAllOfAdditionalData may not be null"));
        let v2 = v2.allow_null("GetActivitiesResponseAllOfAdditionalData", "next_cursor").unwrap();
        assert!(v2.check(&page).is_ok(), "Deal is not loaded: its items are accepted unseen");
        page.response =
            Some(json!({"success": true, "data": [], "additional_data": {"pagination": {"next_start": 500}}}));
        assert!(v2.check(&page).unwrap_err()[0]
            .message
            .contains("`pagination` is not a field of GetActivitiesResponseAllOfAdditionalData"));
    }

    #[test]
    fn pipedrive_v1_users_and_roles_from_the_published_sdk() {
        let dir = specs().join("pipedrive/client-nodejs-32.2.1");
        let v1 = TsSdk::load(
            &[dir.join("src_versions_v1_api_users-api.ts"), dir.join("src_versions_v1_api_roles-api.ts")],
            &[dir.join("src_versions_v1_models_base-user.ts"), dir.join("src_versions_v1_models_user-access.ts")],
        )
        .unwrap();
        assert_eq!(v1.check(&ex("GET", "/users/me", &[])), Ok("getCurrentUser".into()));
        assert_eq!(
            v1.check(&ex("GET", "/users/find", &[("term", "ada"), ("search_by_email", "1")])),
            Ok("findUsersByName".into())
        );
        let e = v1.check(&ex("GET", "/users/find", &[("search_by_email", "true")])).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            v1.check(&ex("GET", "/users/7/roleAssignments", &[("start", "0"), ("limit", "500")])),
            Ok("getUserRoleAssignments".into())
        );
        let mut add = ex("POST", "/users", &[]);
        add.body = Some(json!({"email": "ada@example.com", "active_flag": true}));
        assert!(v1.check(&add).unwrap_err()[0].message.contains("AddUserRequest is not loaded"));

        let user = json!({"id": 1, "name": "Ada", "email": "ada@example.com", "active_flag": true, "phone": null,
            "access": [{"app": "sales", "admin": true, "permission_set_id": "p"}]});
        assert!(v1.errors("BaseUser", &user).is_empty());
        let mut old = user.clone();
        old["is_admin"] = json!(1);
        old["access"][0]["app"] = json!("crm");
        let e = v1.errors("BaseUser", &old);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().any(|m| m.contains("`is_admin` is not a field of BaseUser")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("/access/0/app") && m.contains("UserAccessAppConst")), "{e:?}");
    }
}
