//! TypeScript's type syntax as the SDK's models write it: the types (`interface`s with `extends`,
//! `type` aliases, unions and intersections, `const … as const` and `enum`s), read with a small
//! lexer and parser.

use crate::{number, run_of, MAX_DEPTH};
use serde_json::Value;

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
    pub(super) fn describe(&self) -> String {
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

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TsTok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
}

pub(super) fn ts_lex(src: &str) -> Vec<TsTok> {
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

pub(super) struct TsParser<'t> {
    pub(super) toks: &'t [TsTok],
    pub(super) pos: usize,
}

impl TsParser<'_> {
    pub(super) fn peek(&self) -> Option<&TsTok> {
        self.toks.get(self.pos)
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&TsTok::Punct(c))
    }

    pub(super) fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.pos += 1;
        }
        yes
    }

    pub(super) fn eat_ident(&mut self, word: &str) -> bool {
        let yes = matches!(self.peek(), Some(TsTok::Ident(w)) if w == word);
        if yes {
            self.pos += 1;
        }
        yes
    }

    pub(super) fn ident(&mut self) -> Option<String> {
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

    pub(super) fn union(&mut self, depth: usize) -> TsType {
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

    pub(super) fn postfix(&mut self, depth: usize) -> TsType {
        let mut ty = self.primary(depth + 1);
        while self.is_punct('[') && self.toks.get(self.pos + 1) == Some(&TsTok::Punct(']')) {
            self.pos += 2;
            ty = TsType::Array(Box::new(ty));
        }
        ty
    }

    pub(super) fn generic_args(&mut self, depth: usize) -> Vec<TsType> {
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

    pub(super) fn members(&mut self, obj: &mut TsObject, depth: usize) {
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
    pub(super) fn enum_values(&mut self) -> Vec<Value> {
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
