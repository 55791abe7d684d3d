//! FalconPy's endpoint tables: Python literals, one entry per operation
//! (`["opId", "METHOD", "/path?offset={}&limit={}", "description", "collection", [params]]`),
//! read with a small parser of Python literals (strings with escapes and adjacent-literal
//! concatenation, numbers, `True`/`False`/`None`, lists, tuples, dicts, comments).

use super::{Entry, Operation};
use crate::operation::{List, Param, Place};
use crate::run_of;
use serde_json::{Map, Value};

/// Every endpoint table (a top-level `name = [[…], …]`) in one file, as operations.
pub(super) fn table_ops(text: &str, legacy_by_name: bool) -> Result<Vec<Operation>, String> {
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
        let is_array = schema.get("type") == Some(&Value::from("array"));
        // An array is repeated with `collectionFormat: multi`, else one value joined (`csv`, the
        // Swagger 2 default, `ssv`, `tsv`, `pipes`).
        let list = match schema.get("collectionFormat").and_then(Value::as_str).unwrap_or("csv") {
            _ if !is_array => List::Single,
            "multi" => List::Repeated,
            "ssv" => List::Joined(' '),
            "tsv" => List::Joined('\t'),
            "pipes" => List::Joined('|'),
            _ => List::Joined(','),
        };
        // Query values and form fields are checked item by item; a path value as it stands.
        let schema = match place {
            Place::Query | Place::FormData if is_array => schema.get("items").cloned().unwrap_or(Value::Null),
            _ => Value::Object(schema),
        };
        params.push(Param { list, ..Param::new(name, place, schema, required) });
    }
    Ok(Operation {
        id,
        method,
        template,
        params,
        vendor: Entry {
            legacy_table: legacy,
            deprecated: description.trim_start().to_lowercase().starts_with("deprecated"),
            body_model: None,
            responses: Vec::new(),
        },
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
                let (word, end) = run_of(&chars, i, |c| c.is_alphanumeric() || c == '_');
                i = end;
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
        if depth > crate::MAX_DEPTH {
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
    use super::super::tests::TABLE;
    use super::*;
    use serde_json::json;

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
}
