//! The SDK's models ([`TsModels`]): the files' type declarations gathered by name, and JSON
//! validated against them.

use super::syntax::{ts_lex, Prop, TsDef, TsObject, TsParser, TsTok, TsType};
use crate::schema::Strictness;
use crate::{kind, shown, MAX_DEPTH};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
