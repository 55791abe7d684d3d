//! A Speakeasy Go SDK's operations ([`SpeakeasyOps`]), read from its methods.

use super::lex::{lex, Cursor, Tok};
use super::models::GoModels;
use super::source::{generator_of, go_files, parse_file, parse_type, Field, Generator, GoType, TypeDef};
use crate::operation::{self, List, Operations, Param, Place, Repeats};
use crate::schema::Strictness;
use crate::{Definition, Exchange, LoadError, Part, SetupError, Verdict, Violation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A Speakeasy Go SDK's operations and models as a [`Definition`].
///
/// Read from the SDK's source: each method `func (s *x) Name(ctx, request operations.NameRequest)`
/// that builds a request gives the operation `Name`: its HTTP method (`http.NewRequestWithContext`),
/// its path template (`utils.GenerateURL(ctx, baseURL, "/organizations/{uuid}/invitations", …)`
/// or a literal appended to the base URL), its response switch (each status with the type the
/// SDK decodes its body into, `fallthrough` chains sharing one), and through the request type's
/// field tags: query parameters (`queryParam:"style=form,explode=true,name=count"`; type from
/// the Go type, an enum where the type is a named type with `const` values, required when not a
/// pointer or slice), path parameters (`pathParam`), headers (`header`) and the body
/// (`request:"mediaType=application/json"`, required when not a pointer).
///
/// An exchange is judged by: the operation for its method and path (the most literal template
/// wins); no query parameter the request type does not declare, each declared one of its type and
/// enum, a repeated one only for a slice with `explode=true` (one comma-joined value with
/// `explode=false`), every required one present; path parameters typed; required headers
/// present; the body closed against its model (and a body where the operation takes none is an
/// error); a 2xx status the SDK does not handle is an error, and a 2xx body is checked closed
/// against its type (a body missing where the SDK decodes one too); an error status the SDK
/// decodes is checked open (undeclared keys allowed), one it does not is not checked.
///
/// What the SDK does not carry, the test adds from the vendor's docs: [`SpeakeasyOps::with_rule`]
/// (a limit such as a maximum page size), [`SpeakeasyOps::with_param`] (a parameter documented
/// after the SDK was generated), [`SpeakeasyOps::with_operation`] (an operation whose SDK file we
/// do not hold), [`SpeakeasyOps::allow_null`].
#[derive(Clone, Debug)]
pub struct SpeakeasyOps {
    models: GoModels,
    /// Most literal templates first.
    ops: Operations<SdkMethod>,
}

type Operation = operation::Operation<SdkMethod>;

/// What an SDK method says beyond its parameters: its body, and each status it handles with the
/// type it decodes that answer's body into (`None`: no body).
#[derive(Clone, Debug)]
struct SdkMethod {
    body: Option<Body>,
    responses: Vec<(u16, Option<GoType>)>,
}

#[derive(Clone, Debug)]
struct Body {
    ty: GoType,
    media: String,
    required: bool,
}

const REPEATS: Repeats = Repeats { takes_once: "takes one value", each: true };

/// A function of a Go file: the receiver's presence, the name, its parameters and its body.
struct GoFunc<'t> {
    name: String,
    params: Vec<(String, GoType)>,
    body: &'t [Tok],
}

fn functions(toks: &[Tok]) -> Vec<GoFunc<'_>> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(toks);
    while let Some(keyword) = cur.next_top_level_ident() {
        if keyword != "func" {
            continue;
        }
        // A method's receiver: skipped; the name follows.
        if cur.eat_punct('(') {
            cur.skip_balanced('(', ')');
        }
        let Some(name) = cur.ident().map(str::to_owned) else { continue };
        cur.bump();
        if !cur.eat_punct('(') {
            continue;
        }
        let start = cur.pos;
        cur.skip_balanced('(', ')');
        let params = param_list(inside(toks, start, cur.pos, ')'));
        // The results, up to the body's brace (a result type may hold braces: `interface{}`).
        while let Some(t) = cur.peek() {
            match t {
                Tok::Punct('{') => break,
                Tok::Punct('(') => {
                    cur.bump();
                    cur.skip_balanced('(', ')');
                }
                Tok::Ident(i) if i == "interface" || i == "struct" => {
                    cur.bump();
                    if cur.eat_punct('{') {
                        cur.skip_balanced('{', '}');
                    }
                }
                _ => {
                    cur.bump();
                }
            }
        }
        if !cur.eat_punct('{') {
            continue;
        }
        let start = cur.pos;
        cur.skip_balanced('{', '}');
        out.push(GoFunc { name, params, body: inside(toks, start, cur.pos, '}') });
    }
    out
}

/// The tokens from `start` up to `end`, without the bracket that closes them if it is there (it
/// is not where the source ends first).
fn inside(toks: &[Tok], start: usize, end: usize, close: char) -> &[Tok] {
    let end = if end > start && toks.get(end - 1) == Some(&Tok::Punct(close)) { end - 1 } else { end };
    toks.get(start..end.max(start)).unwrap_or_default()
}

/// `ctx context.Context, request operations.X, opts ...operations.Option`.
fn param_list(toks: &[Tok]) -> Vec<(String, GoType)> {
    let mut out = Vec::new();
    for part in toks.split(|t| t == &Tok::Punct(',')) {
        let part: Vec<Tok> = part.iter().filter(|t| !matches!(t, Tok::Newline | Tok::Comment(_))).cloned().collect();
        let Some(Tok::Ident(name)) = part.first() else { continue };
        // A variadic parameter's `...` says nothing of the element type.
        let rest = match &part[1..] {
            [Tok::Punct('.'), Tok::Punct('.'), Tok::Punct('.'), tail @ ..] => tail,
            rest => rest,
        };
        let mut cur = Cursor::new(rest);
        out.push((name.clone(), parse_type(&mut cur, Generator::OmitEmpty, 0)));
    }
    out
}

/// The operation a Speakeasy method builds, if it builds one.
fn speakeasy_operation(f: &GoFunc, models: &GoModels) -> Option<Operation> {
    let request = f.params.iter().find(|(n, _)| n == "request").map(|(_, t)| t.pointee().clone());
    let body = f.body;
    let ident_at = |i: usize, s: &str| matches!(body.get(i), Some(Tok::Ident(x)) if x == s);
    let method = (0..body.len()).find_map(|i| {
        if !(ident_at(i, "NewRequestWithContext") || ident_at(i, "NewRequest")) {
            return None;
        }
        body[i..].iter().take(8).find_map(|t| match t {
            Tok::Str(m) => Some(m.to_ascii_uppercase()),
            _ => None,
        })
    })?;
    let template = if let Some(i) = (0..body.len()).find(|&i| ident_at(i, "GenerateURL")) {
        body[i..].iter().take(10).find_map(|t| match t {
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        })?
    } else {
        // `url := strings.TrimSuffix(baseURL, "/") + "/organization_memberships"`
        let start = (0..body.len()).find(|&i| ident_at(i, "url") && body.get(i + 1) == Some(&Tok::Punct(':')))?;
        let line: Vec<&Tok> = body[start..].iter().take_while(|t| **t != Tok::Newline).collect();
        let mut path = String::new();
        for w in line.windows(2) {
            if let (Tok::Punct('+'), Tok::Str(s)) = (w[0], w[1]) {
                path.push_str(s);
            }
        }
        if path.is_empty() {
            return None;
        }
        path
    };

    let mut op = Operation {
        id: f.name.clone(),
        method,
        template,
        params: Vec::new(),
        vendor: SdkMethod { body: None, responses: responses(body) },
    };
    if let Some(GoType::Named(req)) = request {
        if let Some(TypeDef::Struct(def)) = models.types.get(&req).map(|d| &d.def) {
            for field in &def.fields {
                request_field(field, models, &mut op);
            }
        }
    }
    Some(op)
}

/// What one field of a request type puts where.
fn request_field(field: &Field, models: &GoModels, op: &mut Operation) {
    let options = |tag: &str| -> BTreeMap<String, String> {
        tag.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    };
    let optional = matches!(field.ty, GoType::Pointer(_) | GoType::Slice(_) | GoType::Map(_));
    if let Some(tag) = field.tag("queryParam") {
        let o = options(tag);
        let name = o.get("name").cloned().unwrap_or_else(|| field.go_name.clone());
        let explode = o.get("explode").is_none_or(|e| e == "true");
        let (schema, is_array) = scalar_schema(field.ty.pointee(), models);
        // A slice is repeated with `explode=true`, else sent as one comma-joined value.
        let list = match (is_array, explode) {
            (false, _) => List::Single,
            (true, true) => List::Repeated,
            (true, false) => List::Joined(','),
        };
        op.params.push(Param { list, ..Param::new(name, Place::Query, schema, !optional) });
    } else if let Some(tag) = field.tag("pathParam") {
        let o = options(tag);
        let name = o.get("name").cloned().unwrap_or_else(|| field.go_name.clone());
        op.params.push(Param::new(name, Place::Path, scalar_schema(field.ty.pointee(), models).0, true));
    } else if let Some(tag) = field.tag("header") {
        let o = options(tag);
        let name = o.get("name").cloned().unwrap_or_else(|| field.go_name.clone());
        op.params.push(Param::new(name, Place::Header, scalar_schema(field.ty.pointee(), models).0, !optional));
    } else if let Some(tag) = field.tag("request") {
        let media = options(tag).get("mediaType").cloned().unwrap_or_else(|| "application/json".into());
        op.vendor.body = Some(Body { ty: field.ty.pointee().clone(), media, required: !field.ty.is_pointer() });
    }
}

/// A parameter's Go type as the scalar schema its text must fit, and whether it is an array.
fn scalar_schema(ty: &GoType, models: &GoModels) -> (Value, bool) {
    let schema = |t: &str| serde_json::json!({ "type": t });
    match ty.pointee() {
        GoType::Slice(inner) => (scalar_schema(inner, models).0, true),
        GoType::Integer => (schema("integer"), false),
        GoType::Number => (schema("number"), false),
        GoType::Bool => (schema("boolean"), false),
        GoType::Named(n) => {
            let base = match models.types.get(n).map(|d| &d.def) {
                Some(TypeDef::Alias(inner)) => scalar_schema(inner, models).0,
                _ => schema("string"),
            };
            match (base, models.enums.get(n)) {
                (Value::Object(mut o), Some(values)) => {
                    o.insert("enum".into(), Value::Array(values.clone()));
                    (Value::Object(o), false)
                }
                (base, _) => (base, false),
            }
        }
        _ => (schema("string"), false),
    }
}

/// The response switch: `case httpRes.StatusCode == 200:` blocks, each with the type its body is
/// decoded into (`var out *operations.X`), `fallthrough` chains sharing the last one's.
fn responses(body: &[Tok]) -> Vec<(u16, Option<GoType>)> {
    let mut out = Vec::new();
    let mut pending: Vec<u16> = Vec::new();
    let mut found: Option<GoType> = None;
    let mut falls = false;
    let mut i = 0;
    while i < body.len() {
        let status = match &body[i..] {
            [Tok::Ident(c), Tok::Ident(_), Tok::Punct('.'), Tok::Ident(sc), Tok::Punct('='), Tok::Punct('='), Tok::Num(n), ..]
                if c == "case" && sc == "StatusCode" =>
            {
                n.parse::<u16>().ok()
            }
            _ => None,
        };
        if let Some(status) = status {
            if !falls {
                out.extend(pending.drain(..).map(|s| (s, found.clone())));
                found = None;
            }
            falls = false;
            pending.push(status);
            i += 7;
            continue;
        }
        match &body[i] {
            Tok::Ident(f) if f == "fallthrough" => falls = true,
            Tok::Ident(v)
                if v == "var"
                    && matches!(body.get(i + 1), Some(Tok::Ident(o)) if o == "out")
                    && found.is_none()
                    && !pending.is_empty() =>
            {
                let mut cur = Cursor::new(&body[i + 2..]);
                found = Some(parse_type(&mut cur, Generator::OmitEmpty, 0).pointee().clone());
            }
            _ => {}
        }
        i += 1;
    }
    out.extend(pending.drain(..).map(|s| (s, found.clone())));
    out
}

impl SpeakeasyOps {
    /// Every `.go` file directly in `dir`: the operation files and the models.
    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        Self::load_files(&go_files(dir)?)
    }

    pub fn load_files<P: AsRef<Path>>(files: &[P]) -> Result<Self, LoadError> {
        Self::from_sources(&crate::pairs(&crate::read_labelled(files)?))
    }

    /// From `(label, Go source)` pairs (a test's fixtures).
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<Self, LoadError> {
        let mut models = GoModels::default();
        let lexed: Vec<(&str, Vec<Tok>)> = sources.iter().map(|(label, text)| (*label, lex(text))).collect();
        for ((label, text), (_, toks)) in sources.iter().zip(&lexed) {
            parse_file(toks, generator_of(text), label, &mut models.types, &mut models.enums)
                .map_err(|message| LoadError::Parse { path: PathBuf::from(label), message })?;
        }
        let mut ops: Vec<Operation> = Vec::new();
        for (label, toks) in &lexed {
            for f in functions(toks) {
                let Some(op) = speakeasy_operation(&f, &models) else { continue };
                if ops.iter().any(|o| o.method == op.method && o.template == op.template) {
                    return Err(LoadError::Parse {
                        path: PathBuf::from(label),
                        message: format!("two operations are {} {}", op.method, op.template),
                    });
                }
                ops.push(op);
            }
        }
        if ops.is_empty() {
            let path = PathBuf::from(sources.first().map_or("", |(l, _)| l));
            return Err(LoadError::Parse { path, message: "no Speakeasy operation methods found".into() });
        }
        Ok(SpeakeasyOps { models, ops: Operations::new(ops) })
    }

    pub fn models(&self) -> &GoModels {
        &self.models
    }

    /// Whether the SDK has `method` at `template` (for tests that name what must exist).
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.has(method, template)
    }

    pub fn operation_ids(&self) -> impl Iterator<Item = &str> {
        self.ops.ids()
    }

    /// Narrows a declared query or path parameter with JSON-Schema keywords the SDK's Go type
    /// cannot carry but the vendor documents (`{"type": "integer", "minimum": 1, "maximum":
    /// 100}` for Calendly's `count`); keywords given replace the SDK's. `operation` is the
    /// method's name (`GetOrganizationMemberships`) or `METHOD /template`.
    pub fn with_rule(mut self, operation: &str, parameter: &str, schema: Value) -> Result<Self, SetupError> {
        let Value::Object(rule) = schema else {
            return Err(SetupError::Invalid(format!("the rule for `{parameter}` must be a JSON object")));
        };
        let op = self.ops.named_mut(operation)?;
        let id = op.id.clone();
        let place = if op.param(Place::Query, parameter).is_some() { Place::Query } else { Place::Path };
        let param = op
            .param_mut(place, parameter)
            .ok_or_else(|| SetupError::UnknownParameter { operation: id, parameter: parameter.into() })?;
        if let Value::Object(existing) = &mut param.schema {
            existing.extend(rule);
        }
        Ok(self)
    }

    /// Declares an optional query parameter the vendor documents but the SDK copy predates
    /// (Calendly's `role` filter on memberships, 2025); `schema` as in [`SpeakeasyOps::with_rule`].
    pub fn with_param(mut self, operation: &str, parameter: &str, schema: Value) -> Result<Self, SetupError> {
        if !schema.is_object() {
            return Err(SetupError::Invalid(format!("the schema of `{parameter}` must be a JSON object")));
        }
        let op = self.ops.named_mut(operation)?;
        if op.param(Place::Query, parameter).is_some() {
            return Err(SetupError::AlreadyDefined(format!("{} of {}", parameter, op.id)));
        }
        op.params.push(Param::new(parameter, Place::Query, schema, false));
        Ok(self)
    }

    /// An operation the vendor documents whose SDK file we do not hold (Calendly's
    /// `GET /users/me`): no parameters, no body, and for each status the model its body takes
    /// (`None`: no body). Models not in the SDK can be added first with
    /// [`SpeakeasyOps::with_models`].
    pub fn with_operation(
        mut self,
        id: &str,
        method: &str,
        template: &str,
        responses: &[(u16, Option<&str>)],
    ) -> Result<Self, SetupError> {
        let method = method.to_ascii_uppercase();
        if self.ops.iter().any(|o| o.id == id || (o.method == method && o.template == template)) {
            return Err(SetupError::AlreadyDefined(format!("{id} ({method} {template})")));
        }
        let mut declared = Vec::new();
        for (status, model) in responses {
            if let Some(m) = model {
                if !self.models.has(m) {
                    return Err(SetupError::UnknownModel((*m).into()));
                }
            }
            declared.push((*status, model.map(|m| GoType::Named(m.into()))));
        }
        self.ops.push(Operation {
            id: id.into(),
            method,
            template: template.into(),
            params: Vec::new(),
            vendor: SdkMethod { body: None, responses: declared },
        });
        Ok(self)
    }

    /// More models, from Go source text (a wrapper such as `{resource: User}` for an operation
    /// added with [`SpeakeasyOps::with_operation`]).
    pub fn with_models(mut self, label: &str, go_source: &str) -> Result<Self, LoadError> {
        self.models.add_source(label, go_source)?;
        Ok(self)
    }

    /// See [`GoModels::allow_null`].
    pub fn allow_null(mut self, type_name: &str, field: &str) -> Result<Self, SetupError> {
        self.models = self.models.allow_null(type_name, field)?;
        Ok(self)
    }

    fn check_body(&self, op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let (spec, body) = match op.sent_body(ex, op.vendor.body.as_ref().map(|b| (b, b.required))) {
            Ok(sent) => sent,
            Err(verdict) => return verdict,
        };
        let mut out = Vec::new();
        if let Some(ct) = ex.header("content-type") {
            let mime = ct.split(';').next().unwrap_or(ct).trim();
            if !mime.eq_ignore_ascii_case(&spec.media) {
                out.push(Violation::new(
                    Part::RequestBody,
                    format!("{} takes {}, the body was sent as {mime}", op.id, spec.media),
                ));
            }
        }
        if !spec.media.ends_with("json") {
            out.push(Violation::new(
                Part::RequestBody,
                format!("a {} body ({}) is not one this check can read", spec.media, op.id),
            ));
            return out;
        }
        let label = spec.ty.describe();
        out.extend(
            self.models
                .check_type(&spec.ty, body, Strictness::Closed)
                .into_iter()
                .map(|e| Violation::new(Part::RequestBody, format!("{} body ({label}) {e}", op.id))),
        );
        out
    }

    fn check_response(&self, op: &Operation, ex: &Exchange) -> Vec<Violation> {
        let Some((_, ty)) = op.vendor.responses.iter().find(|(s, _)| *s == ex.status) else {
            return if (200..300).contains(&ex.status) {
                let declared: Vec<String> = op.vendor.responses.iter().map(|(s, _)| s.to_string()).collect();
                vec![op.unanswered(ex.status, format!("the SDK handles {}", declared.join(", ")))]
            } else {
                vec![]
            };
        };
        op.check_answer(ex, ty.as_ref().map(|t| (t, t.describe())), |t, body, strictness| {
            self.models.check_type(t, body, strictness)
        })
    }
}

impl Definition for SpeakeasyOps {
    fn check(&self, ex: &Exchange) -> Verdict {
        self.ops.judge(ex, &REPEATS, |op| self.check_body(op, ex), |op| self.check_response(op, ex))
    }
}

#[cfg(test)]
mod tests;
