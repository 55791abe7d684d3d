//! Go source as far as JSON is concerned: a parser of the `type` and `const` declarations the
//! generators write (structs with their tags and comments, named types, enums), over
//! [`super::lex`]'s tokens.

use super::lex::{go_unquote, Cursor, Tok};
use crate::{LoadError, MAX_DEPTH};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Types

/// A Go type as far as JSON is concerned.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum GoType {
    String,
    /// `time.Time`, `strfmt.DateTime`: an RFC 3339 string (what their `UnmarshalJSON` takes).
    DateTime,
    Integer,
    Number,
    Bool,
    /// `interface{}`, `any`, `json.RawMessage`.
    Any,
    Pointer(Box<GoType>),
    Slice(Box<GoType>),
    Map(Box<GoType>),
    /// Another type of the SDK, by its name without the package.
    Named(String),
    Struct(Box<StructDef>),
    /// A type JSON cannot carry, or another library's that we do not know (`http.Client`).
    Unsupported(String),
}

impl GoType {
    pub(super) fn describe(&self) -> String {
        match self {
            GoType::String => "a string".into(),
            GoType::DateTime => "an RFC 3339 date-time string".into(),
            GoType::Integer => "an integer".into(),
            GoType::Number => "a number".into(),
            GoType::Bool => "a boolean".into(),
            GoType::Any => "anything".into(),
            GoType::Pointer(inner) => inner.describe(),
            GoType::Slice(_) => "an array".into(),
            GoType::Map(_) | GoType::Struct(_) => "an object".into(),
            GoType::Named(n) => n.clone(),
            GoType::Unsupported(t) => t.clone(),
        }
    }

    pub(super) fn is_pointer(&self) -> bool {
        matches!(self, GoType::Pointer(_))
    }

    /// Without the pointer (the JSON is the same; only null differs).
    pub(super) fn pointee(&self) -> &GoType {
        match self {
            GoType::Pointer(inner) => inner.pointee(),
            other => other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub(super) struct StructDef {
    pub(super) fields: Vec<Field>,
    /// Embedded types without a JSON name: their fields are promoted (encoding/json's rule).
    pub(super) embedded: Vec<GoType>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Field {
    pub(super) go_name: String,
    /// The JSON key, or `None` where encoding/json skips the field (`json:"-"`, unexported).
    pub(super) json: Option<String>,
    pub(super) ty: GoType,
    /// The struct tag's `key:"value"` pairs.
    pub(super) tags: Vec<(String, String)>,
    pub(super) required: bool,
    pub(super) nullable: bool,
    /// JSON-Schema keywords from go-swagger's comments (`enum`, `minimum`, `maxLength`, …).
    pub(super) rules: Map<String, Value>,
}

impl Field {
    pub(super) fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Which generator wrote a file: they mark required fields differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Generator {
    /// `// Required: true` above a required field.
    GoSwagger,
    /// A field without `omitempty` is required (Speakeasy, and encoding/json's own reading).
    OmitEmpty,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TypeDef {
    Struct(StructDef),
    /// `type X string`, `type X []Y`, …
    Alias(GoType),
}

#[derive(Clone, Debug)]
pub(super) struct Declared {
    pub(super) def: TypeDef,
    pub(super) source: String,
}

fn builtin(name: &str) -> Option<GoType> {
    Some(match name {
        "string" => GoType::String,
        "bool" => GoType::Bool,
        "int" | "int8" | "int16" | "int32" | "int64" | "uint" | "uint8" | "uint16" | "uint32" | "uint64" | "byte"
        | "rune" | "uintptr" => GoType::Integer,
        "float32" | "float64" => GoType::Number,
        "any" => GoType::Any,
        "error" | "complex64" | "complex128" => GoType::Unsupported(name.into()),
        _ => return None,
    })
}

/// `pkg.Name`: the standard and runtime libraries the generators use, else another package of
/// the SDK itself (`models.`, `shared.`, `operations.`, …), whose types we look up by name.
fn qualified(pkg: &str, name: &str) -> GoType {
    match (pkg, name) {
        ("time", "Time") | ("strfmt", "DateTime") => GoType::DateTime,
        ("time", "Duration") => GoType::Integer,
        ("strfmt", _) | ("types", "Date") | ("types", "BigInt") | ("types", "Decimal") => GoType::String,
        ("json", "RawMessage") => GoType::Any,
        ("json", "Number") => GoType::Number,
        ("big", _) | ("decimal", _) => GoType::Number,
        ("http" | "context" | "io" | "runtime" | "url" | "sync" | "os" | "bytes", _) => {
            GoType::Unsupported(format!("{pkg}.{name}"))
        }
        _ => GoType::Named(name.into()),
    }
}

/// A type expression at the cursor. Stops before the tag, comment or end of line after it.
pub(super) fn parse_type(cur: &mut Cursor, gen: Generator, depth: usize) -> GoType {
    if depth > MAX_DEPTH {
        cur.skip_line();
        return GoType::Unsupported("a type nested too deep".into());
    }
    match cur.bump() {
        Some(Tok::Punct('*')) => GoType::Pointer(Box::new(parse_type(cur, gen, depth + 1))),
        Some(Tok::Punct('[')) => {
            if !cur.eat_punct(']') {
                cur.skip_balanced('[', ']');
            }
            // encoding/json writes a []byte as a base64 string.
            if cur.ident() == Some("byte") && !matches!(cur.peek_at(1), Some(Tok::Punct('.'))) {
                cur.bump();
                return GoType::String;
            }
            GoType::Slice(Box::new(parse_type(cur, gen, depth + 1)))
        }
        Some(Tok::Punct('(')) => {
            let inner = parse_type(cur, gen, depth + 1);
            cur.eat_punct(')');
            inner
        }
        Some(Tok::Ident(word)) => match word.as_str() {
            "map" => {
                if cur.eat_punct('[') {
                    let _key = parse_type(cur, gen, depth + 1);
                    cur.eat_punct(']');
                }
                GoType::Map(Box::new(parse_type(cur, gen, depth + 1)))
            }
            "interface" => {
                if cur.eat_punct('{') {
                    cur.skip_balanced('{', '}');
                }
                GoType::Any
            }
            "struct" => {
                if !cur.eat_punct('{') {
                    return GoType::Unsupported("struct".into());
                }
                GoType::Struct(Box::new(parse_struct_body(cur, gen, depth + 1)))
            }
            "func" | "chan" => {
                cur.skip_line();
                GoType::Unsupported(word.clone())
            }
            _ => {
                let ty = if cur.is_punct('.') && matches!(cur.peek_at(1), Some(Tok::Ident(_))) {
                    cur.bump();
                    let name = cur.ident().unwrap_or_default().to_owned();
                    cur.bump();
                    qualified(word, &name)
                } else {
                    builtin(word).unwrap_or_else(|| GoType::Named(word.clone()))
                };
                // A generic instantiation (`optionalnullable.OptionalNullable[T]`): T, which may be null.
                if cur.is_punct('[') && !matches!(cur.peek_at(1), Some(Tok::Punct(']'))) {
                    cur.bump();
                    let arg = parse_type(cur, gen, depth + 1);
                    cur.skip_balanced('[', ']');
                    return GoType::Pointer(Box::new(arg));
                }
                ty
            }
        },
        _ => {
            cur.skip_line();
            GoType::Unsupported("an expression we cannot read".into())
        }
    }
}

/// The fields after `struct {` up to and past the closing brace.
fn parse_struct_body(cur: &mut Cursor, gen: Generator, depth: usize) -> StructDef {
    let mut def = StructDef::default();
    let mut comments: Vec<String> = Vec::new();
    let mut newlines = 0;
    loop {
        match cur.peek() {
            None => return def,
            Some(Tok::Punct('}')) => {
                cur.bump();
                return def;
            }
            Some(Tok::Newline) => {
                cur.bump();
                newlines += 1;
                // A blank line: the comments above belong to nothing below.
                if newlines >= 2 {
                    comments.clear();
                }
            }
            Some(Tok::Comment(c)) => {
                comments.push(c.clone());
                cur.bump();
                newlines = 0;
            }
            Some(Tok::Punct(';')) => {
                cur.bump();
            }
            Some(_) => {
                newlines = 0;
                let before = cur.pos;
                parse_field(cur, gen, depth, &comments, &mut def);
                comments.clear();
                // A stray `)` the field's line ends at: past it, so that the loop moves on.
                if cur.pos == before {
                    cur.bump();
                }
            }
        }
    }
}

fn parse_field(cur: &mut Cursor, gen: Generator, depth: usize, comments: &[String], def: &mut StructDef) {
    let mut names: Vec<String> = Vec::new();
    let embedded_line = match (cur.peek(), cur.peek_at(1)) {
        (Some(Tok::Punct('*')), _) => true,
        (Some(Tok::Ident(_)), Some(Tok::Punct('.'))) => true,
        (Some(Tok::Ident(_)), None | Some(Tok::Newline | Tok::Str(_) | Tok::Comment(_) | Tok::Punct('}' | ';'))) => {
            true
        }
        (Some(Tok::Ident(_)), _) => false,
        _ => {
            cur.skip_line();
            return;
        }
    };
    if !embedded_line {
        while let Some(name) = cur.ident() {
            names.push(name.to_owned());
            cur.bump();
            if !cur.eat_punct(',') {
                break;
            }
            cur.skip_lines();
        }
    }
    let ty = parse_type(cur, gen, depth + 1);
    let tags = match cur.peek() {
        Some(Tok::Str(tag)) => {
            cur.bump();
            parse_tag(tag)
        }
        _ => Vec::new(),
    };
    let mut trailing = Vec::new();
    while let Some(Tok::Comment(c)) = cur.peek() {
        trailing.push(c.clone());
        cur.bump();
    }
    // Anything else up to the end of the line is not ours to understand.
    cur.skip_line();

    let json_tag = tags.iter().find(|(k, _)| k == "json").map(|(_, v)| v.clone());
    let (tag_name, options) = match &json_tag {
        Some(t) => {
            let mut parts = t.split(',');
            let name = parts.next().unwrap_or_default().to_owned();
            (Some(name), parts.map(str::to_owned).collect::<Vec<_>>())
        }
        None => (None, Vec::new()),
    };
    let omitempty = options.iter().any(|o| o == "omitempty" || o == "omitzero");
    // Each field as (Go name, JSON key); `None` where encoding/json skips it.
    let fields: Vec<(String, Option<String>)> = if embedded_line {
        match tag_name.as_deref() {
            Some("-") if options.is_empty() => return,
            // An embedded type with a JSON name is an ordinary field of that name.
            Some(name) if !name.is_empty() => vec![(ty.describe(), Some(name.to_owned()))],
            // Without one, its fields are promoted into this struct.
            _ => {
                def.embedded.push(ty);
                return;
            }
        }
    } else {
        names
            .into_iter()
            .map(|go_name| {
                let json = match tag_name.as_deref() {
                    Some("-") if options.is_empty() => None,
                    Some(n) if !n.is_empty() => Some(n.to_owned()),
                    // No name in the tag: encoding/json uses the Go name of an exported field.
                    _ => go_name.chars().next().filter(|c| c.is_uppercase()).map(|_| go_name.clone()),
                };
                (go_name, json)
            })
            .collect()
    };
    let all_comments: Vec<&String> = comments.iter().chain(&trailing).collect();
    let swagger_required = all_comments.iter().any(|c| c.trim() == "Required: true");
    let rules = comment_rules(&all_comments);
    let (required, nullable) = match gen {
        Generator::GoSwagger => (swagger_required, !swagger_required),
        Generator::OmitEmpty => (!omitempty, ty.is_pointer() || omitempty),
    };
    for (go_name, json) in fields {
        def.fields.push(Field {
            go_name,
            json,
            ty: ty.clone(),
            tags: tags.clone(),
            required,
            nullable,
            rules: rules.clone(),
        });
    }
}

/// `json:"a,omitempty" queryParam:"style=form,name=a"` as pairs (Go's `reflect.StructTag`).
fn parse_tag(tag: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = tag.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while chars.get(i).is_some_and(|c| *c == ' ') {
            i += 1;
        }
        let start = i;
        while chars.get(i).is_some_and(|c| *c > ' ' && *c != ':' && *c != '"') {
            i += 1;
        }
        if i == start || chars.get(i) != Some(&':') || chars.get(i + 1) != Some(&'"') {
            return out;
        }
        let key: String = chars[start..i].iter().collect();
        let (value, next) = go_unquote(&chars, i + 2, '"');
        out.push((key, value));
        i = next;
    }
}

/// go-swagger's validation comments as JSON-Schema keywords.
fn comment_rules(comments: &[&String]) -> Map<String, Value> {
    let mut rules = Map::new();
    for c in comments {
        let Some((key, rest)) = c.split_once(':') else { continue };
        let rest = rest.trim();
        let number = |s: &str| s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number);
        match key.trim() {
            "Enum" => {
                let values = serde_json::from_str::<Vec<Value>>(rest).unwrap_or_else(|_| {
                    rest.trim_start_matches('[')
                        .trim_end_matches(']')
                        .split_whitespace()
                        .map(|s| Value::String(s.to_owned()))
                        .collect()
                });
                rules.insert("enum".into(), Value::Array(values));
            }
            k @ ("Maximum" | "Minimum") => {
                let (exclusive, n) = match rest.strip_prefix('<').or_else(|| rest.strip_prefix('>')) {
                    Some(n) => (true, n),
                    None => (false, rest),
                };
                let keyword = if k == "Maximum" { "maximum" } else { "minimum" };
                if let Some(n) = number(n) {
                    rules.insert(keyword.into(), n);
                    if exclusive {
                        let flag = if k == "Maximum" { "exclusiveMaximum" } else { "exclusiveMinimum" };
                        rules.insert(flag.into(), Value::Bool(true));
                    }
                }
            }
            k @ ("Max Length" | "Min Length" | "Max Items" | "Min Items") => {
                if let Ok(n) = rest.parse::<u64>() {
                    let keyword = match k {
                        "Max Length" => "maxLength",
                        "Min Length" => "minLength",
                        "Max Items" => "maxItems",
                        _ => "minItems",
                    };
                    rules.insert(keyword.into(), Value::from(n));
                }
            }
            _ => {}
        }
    }
    rules
}

/// Every `type` and typed `const` at the top level of one file.
/// Types go into `types` (a name declared twice is an error) and enum values into `enums`, by type.
pub(super) fn parse_file(
    toks: &[Tok],
    gen: Generator,
    source: &str,
    types: &mut BTreeMap<String, Declared>,
    enums: &mut BTreeMap<String, Vec<Value>>,
) -> Result<(), String> {
    let mut cur = Cursor::new(toks);
    while let Some(keyword) = cur.next_top_level_ident() {
        match keyword {
            "type" => cur.specs(|cur| type_spec(cur, gen, source, types))?,
            "const" => cur.specs(|cur| {
                const_spec(cur, enums);
                Ok(())
            })?,
            _ => {}
        }
    }
    Ok(())
}

fn type_spec(
    cur: &mut Cursor,
    gen: Generator,
    source: &str,
    types: &mut BTreeMap<String, Declared>,
) -> Result<(), String> {
    let Some(name) = cur.ident().map(str::to_owned) else {
        cur.skip_line();
        return Ok(());
    };
    cur.bump();
    cur.eat_punct('=');
    let def = match parse_type(cur, gen, 0) {
        GoType::Struct(def) => TypeDef::Struct(*def),
        other => TypeDef::Alias(other),
    };
    cur.skip_line();
    if let Some(previous) = types.get(&name) {
        return Err(format!("the type {name} is defined twice ({} and {source})", previous.source));
    }
    types.insert(name, Declared { def, source: source.to_owned() });
    Ok(())
}

/// `XFoo X = "foo"`: a value of the enum X. Untyped constants and builtin-typed ones (go-swagger
/// writes its inline enums' values as `string` constants) say nothing of a named type.
fn const_spec(cur: &mut Cursor, enums: &mut BTreeMap<String, Vec<Value>>) {
    let line_start = cur.pos;
    cur.skip_line();
    let line = &cur.toks[line_start..cur.pos];
    let (Some(Tok::Ident(_)), Some(Tok::Ident(ty))) = (line.first(), line.get(1)) else { return };
    let ty = match (line.get(2), line.get(3)) {
        (Some(Tok::Punct('.')), Some(Tok::Ident(n))) => n,
        _ => ty,
    };
    if builtin(ty).is_some() {
        return;
    }
    let Some(eq) = line.iter().position(|t| t == &Tok::Punct('=')) else { return };
    let value = match &line[eq + 1..] {
        [Tok::Str(s)] => Value::String(s.clone()),
        [Tok::Num(n)] => number_value(n),
        [Tok::Punct('-'), Tok::Num(n)] => number_value(&format!("-{n}")),
        _ => return,
    };
    if !value.is_null() {
        enums.entry(ty.clone()).or_default().push(value);
    }
}

/// Go allows `_` between digits.
fn number_value(n: &str) -> Value {
    crate::number(&n.replace('_', ""))
}

pub(super) fn generator_of(text: &str) -> Generator {
    if text.contains("Code generated by go-swagger") || text.contains("swagger:model") {
        Generator::GoSwagger
    } else {
        Generator::OmitEmpty
    }
}

pub(super) fn go_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Io { path: dir.to_owned(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "go") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Parse { path: dir.to_owned(), message: "no .go files".into() });
    }
    Ok(files)
}
