//! TypeScript's types as the SDK's models write them (`interface`s with `extends`, `type`
//! aliases, unions and intersections, `const … as const` and `enum`s), read with a small lexer and
//! parser, and JSON validated against them.

use crate::schema::Strictness;
use crate::{kind, number, run_of, shown, MAX_DEPTH};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TsType {
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
pub(super) struct TsObject {
    pub(super) props: Vec<Prop>,
    /// `[key: string]: T`: other keys allowed, with values of T.
    pub(super) index: Option<TsType>,
    pub(super) extends: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Prop {
    pub(super) name: String,
    pub(super) ty: TsType,
    pub(super) optional: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TsDef {
    Object(TsObject),
    Alias(TsType),
    /// `export const XConst = {…} as const` or `export enum X {…}`: the values.
    Enum(Vec<Value>),
}

/// Whether a model a value references but that is not loaded fails it (request bodies: nothing
/// passes unchecked) or is accepted unseen (answers, which a test reads only in part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Missing {
    Error,
    Accept,
}

#[derive(Clone, Debug, Default)]
pub(super) struct TsModels {
    /// Each model with the file it came from.
    pub(super) defs: BTreeMap<String, (TsDef, String)>,
    /// `(model, field)` pairs that may be null though their type does not say so.
    pub(super) null_ok: BTreeSet<(String, String)>,
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
                let (word, end) = run_of(&chars, i, |c| c.is_alphanumeric() || c == '_' || c == '$');
                out.push(TsTok::Ident(word));
                i = end;
            }
            c if c.is_ascii_digit() => {
                let (number, end) = run_of(&chars, i, |c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
                out.push(TsTok::Num(number));
                i = end;
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

pub(super) fn parse_type_text(text: &str) -> TsType {
    let toks = ts_lex(text);
    TsParser { toks: &toks, pos: 0 }.union(0)
}

impl TsModels {
    /// The models of one file: `interface`s, `type` aliases, `const … as const` and `enum`s.
    pub(super) fn add(&mut self, label: &str, text: &str) -> Result<(), String> {
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

    pub(super) fn missing(&self) -> BTreeSet<String> {
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
    pub(super) fn check(&self, ty: &TsType, value: &Value, missing: Missing, root_extra: &[String]) -> Vec<String> {
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

impl TsValidator<'_> {
    fn mismatch(&mut self, ty: &TsType, v: &Value, at: &str) {
        self.out.push(format!("at {}: expected {}, got {}", shown(at), ty.describe(), kind(v)));
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
            self.out.push(format!("at {}: expected {name} (an object), got {}", shown(at), kind(v)));
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
