//! From the settings' JSON Schema to the reference page: one Markdown table
//! per TOML table, one row per key.

use super::types::{x_type, X_KEY};
use serde_json::Value;
use std::fmt::Write;

/// One part of the page: a schema and the TOML path it sits at
/// (`""` for the whole [`crate::Settings`], `vendors.pipedrive` for a vendor's table).
pub struct Part {
    pub path: String,
    pub schema: Value,
}

/// One TOML table of the page.
#[derive(Debug)]
struct Table {
    /// Dotted, `[]` after an array of tables, `<vendor>` for a key per vendor.
    path: String,
    description: String,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    key: String,
    env: Option<String>,
    kind: String,
    default: String,
    description: String,
}

/// The page: `intro`, a list of the sections, then every table.
pub fn markdown(title: &str, intro: &str, parts: &[Part]) -> String {
    let mut tables = Vec::new();
    for part in parts {
        walk(&part.schema, &part.path, &mut tables);
    }
    tables.retain(|t| !t.path.is_empty());
    tables.sort_by(|a, b| segments(&a.path).cmp(&segments(&b.path)));

    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n\n{}\n", intro.trim());
    let top: Vec<&Table> = tables.iter().filter(|t| !t.path.contains('.')).collect();
    out.push_str("Sections: ");
    let links: Vec<String> =
        top.iter().map(|t| format!("[`[{}]`](#{})", t.path, slug(&format!("`[{}]`", t.path)))).collect();
    out.push_str(&links.join(", "));
    out.push_str(".\n");
    for t in &tables {
        let depth = if t.path.contains('.') { "###" } else { "##" };
        let _ = writeln!(out, "\n{depth} `{}`\n", heading(&t.path));
        if !t.description.is_empty() {
            let _ = writeln!(out, "{}\n", t.description);
        }
        if t.path.ends_with("[]") && !t.path.contains("[].") {
            let list = &t.path[..t.path.len() - 2];
            if let Some(env) = env_var(list) {
                let _ = writeln!(
                    out,
                    "A list of tables; in the environment, the whole list is one variable: \
                     `{env}='[{{ key = \"value\", ... }}, ...]'`.\n"
                );
            }
        }
        if t.rows.is_empty() {
            continue;
        }
        out.push_str("| Key | Environment variable | Type | Default | Description |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for r in &t.rows {
            let env = r.env.as_deref().map_or("—".to_string(), |e| format!("`{e}`"));
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                r.key,
                env,
                cell(&r.kind),
                cell(&r.default),
                cell(&r.description)
            );
        }
    }
    // A table without rows (only its sub-tables) leaves an empty line too many.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

/// Collects the tables of `schema` (an object) at `path`, depth first.
fn walk(schema: &Value, path: &str, tables: &mut Vec<Table>) {
    let mut table = Table { path: path.to_string(), description: describe(schema), rows: Vec::new() };
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut nested = Vec::new();
    for (name, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let prop = &unnull(prop);
        let key = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        if is_table(prop) {
            nested.push((prop.clone(), key));
        } else if let Some(items) = prop.get("items").filter(|i| is_table(i) && x_type(prop).is_none()) {
            // The field's own words introduce its table.
            let mut items = items.clone();
            if let Some(d) = prop.get("description") {
                items["description"] = d.clone();
            }
            nested.push((items, format!("{key}[]")));
        } else if let Some((placeholder, value)) = keyed(prop) {
            let key = format!("{key}.<{placeholder}>");
            if is_table(value) {
                let mut value = value.clone();
                if let Some(d) = prop.get("description") {
                    value["description"] = d.clone();
                }
                nested.push((value, key));
            } else {
                // A key per vendor (and per workflow) holding a value: one row.
                let (mut key, mut value) = (key, value);
                while let Some((p, inner)) = keyed(value) {
                    key = format!("{key}.<{p}>");
                    value = inner;
                }
                table.rows.push(Row {
                    env: env_var(&key),
                    kind: kind(value),
                    default: "none".into(),
                    description: describe(prop),
                    key,
                });
            }
        } else {
            table.rows.push(Row {
                env: env_var(&key),
                kind: kind(prop),
                default: default(prop, required.contains(&name.as_str())),
                description: with_variants(prop),
                key,
            });
        }
    }
    tables.push(table);
    for (schema, key) in nested {
        walk(&schema, &key, tables);
    }
}

/// An `Option`'s schema without its null: unset is what the Default column says.
fn unnull(schema: &Value) -> Value {
    let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
    let mut schema = schema.clone();
    let single = schema.get("anyOf").and_then(Value::as_array).and_then(|options| {
        let rest: Vec<&Value> = options.iter().filter(|o| !is_null(o)).collect();
        (rest.len() == 1 && options.len() == 2).then(|| rest[0].clone())
    });
    if let (Some(Value::Object(inner)), Some(outer)) = (single, schema.as_object_mut()) {
        outer.remove("anyOf");
        for (k, v) in inner {
            // The field's own description and default win over its type's.
            outer.entry(k).or_insert(v);
        }
    }
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
    schema
}

/// A struct: a table of its own rather than a row.
fn is_table(schema: &Value) -> bool {
    schema.get("properties").is_some() && x_type(schema).is_none()
}

/// A table keyed by vendor or workflow: its placeholder and its values' schema.
fn keyed(schema: &Value) -> Option<(&str, &Value)> {
    let key = schema.get(X_KEY)?.as_str()?;
    Some((key, schema.get("additionalProperties")?))
}

/// `LIFECYCLE_` and the path, a double underscore for each dot. None inside a
/// list of tables, which the environment can only give whole.
fn env_var(path: &str) -> Option<String> {
    if path.contains("[]") {
        return None;
    }
    Some(format!("LIFECYCLE_{}", path.replace('.', "__").to_uppercase()))
}

/// The Type column: what an operator writes.
fn kind(schema: &Value) -> String {
    let schema = &unnull(schema);
    if let Some(t) = x_type(schema) {
        return t.to_string();
    }
    if let Some(names) = constants(schema) {
        return one_of(&names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return options.iter().map(kind).collect::<Vec<_>>().join(" or ");
    }
    if let Some((placeholder, value)) = keyed(schema) {
        return format!("table: {placeholder} → {}", kind(value));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => vec![],
    };
    match types.as_slice() {
        ["array"] => match schema.get("items").map(kind) {
            // A plain noun takes a plural; an enum's values or a form do not.
            Some(item) if !item.contains(['`', '(']) => format!("list of {item}s"),
            Some(item) => format!("list of {item}"),
            None => "list".into(),
        },
        ["object"] => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => format!("table: name → {}", kind(v)),
            _ => "table".into(),
        },
        ["integer"] if schema.get("minimum").and_then(Value::as_i64) == Some(1) => "integer ≥ 1".into(),
        [t] => (*t).to_string(),
        ts => ts.join(" or "),
    }
}

/// An enum's values with their doc comments, when it is one.
fn constants(schema: &Value) -> Option<Vec<(String, String)>> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| Some((v.as_str()?.to_string(), String::new())))
            .collect();
    }
    let variants = schema.get("oneOf")?.as_array()?;
    variants.iter().map(|v| Some((v.get("const")?.as_str()?.to_string(), describe(v)))).collect()
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`\"{n}\"`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// The description, and each documented value of an enum.
fn with_variants(schema: &Value) -> String {
    let mut text = describe(schema);
    for (name, doc) in constants(schema).unwrap_or_default() {
        if !doc.is_empty() {
            let _ = write!(text, "{}`\"{name}\"`: {doc}", if text.is_empty() { "" } else { " " });
        }
    }
    text
}

/// The Default column.
fn default(schema: &Value, required: bool) -> String {
    if required {
        return "**required**".into();
    }
    match schema.get("default") {
        Some(Value::Null) => "unset".into(),
        Some(Value::Array(a)) if a.is_empty() => "none".into(),
        Some(Value::Object(o)) if o.is_empty() => "none".into(),
        Some(v) => format!("`{}`", toml_value(v)),
        // A type the derive cannot show a default of (a secret, a list of
        // tables): only ever empty or unset by default (see the tests).
        None if matches!(kind(schema).as_str(), k if k.starts_with("list") || k.starts_with("table")) => "none".into(),
        None => "unset".into(),
    }
}

/// A default as TOML writes it (inline tables for tables; null members left out).
pub(super) fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(members) => {
            let inner: Vec<String> =
                members.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| format!("{k} = {}", toml_value(v))).collect();
            format!("{{ {} }}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// A doc comment as one line of a table cell: lines joined, paragraphs kept apart.
fn describe(schema: &Value) -> String {
    let text = schema.get("description").and_then(Value::as_str).unwrap_or_default();
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// A table cell: a pipe would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `approval.rules[]` → `[[approval.rules]]`; `worker` → `[worker]`.
fn heading(path: &str) -> String {
    match path.strip_suffix("[]") {
        Some(list) => format!("[[{}]]", list.replace("[]", "")),
        None => format!("[{}]", path.replace("[]", "")),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The anchor GitHub gives a heading: lower case, punctuation but `-` and
/// `_` dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_struct_is_a_table_and_its_fields_are_rows() {
        let schema = json!({"properties": {"db": {"description": "The database.", "properties": {
            "url": {"type": "string", "default": "sqlite://x", "description": "Where\nit is."},
            "pool": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "mode": {"oneOf": [{"const": "a", "description": "A."}, {"const": "b"}], "default": "a"},
        }, "required": ["pool"]}}});
        let page = markdown("T", "Intro.", &[Part { path: String::new(), schema }]);
        assert!(page.contains("## `[db]`\n\nThe database."), "{page}");
        assert!(
            page.contains("| `db.url` | `LIFECYCLE_DB__URL` | string | `\"sqlite://x\"` | Where it is. |"),
            "{page}"
        );
        assert!(page.contains("| `db.pool` | `LIFECYCLE_DB__POOL` | integer ≥ 1 | **required** |"), "{page}");
        assert!(page.contains("| `db.tags` | `LIFECYCLE_DB__TAGS` | list of strings | none |"), "{page}");
        assert!(page.contains("| `\"a\"` or `\"b\"` | `\"a\"` | `\"a\"`: A. |"), "{page}");
        assert!(page.contains("Sections: [`[db]`](#db)."), "{page}");
    }

    #[test]
    fn lists_of_tables_and_tables_per_vendor_nest_under_their_section() {
        let item = json!({"properties": {"name": {"type": "string"}}, "required": ["name"]});
        let schema = json!({"properties": {"n": {"properties": {
            "hooks": {"type": "array", "items": item, "description": "One per hook."},
            "by": {"type": "object", X_KEY: "vendor", "additionalProperties": {"properties": {"k": {"type": "boolean"}}}},
            "lead": {"type": "object", X_KEY: "vendor", "additionalProperties":
                {"type": "object", X_KEY: "workflow", "additionalProperties": {"type": "string"}}},
        }}}});
        let page = markdown("T", "", &[Part { path: String::new(), schema }]);
        assert!(page.contains("### `[[n.hooks]]`\n\nOne per hook.\n\nA list of tables; in the environment, the whole list is one variable: `LIFECYCLE_N__HOOKS="), "{page}");
        assert!(page.contains("| `n.hooks[].name` | — | string | **required** |"), "{page}");
        assert!(page.contains("### `[n.by.<vendor>]`"), "{page}");
        assert!(page.contains("| `n.by.<vendor>.k` | `LIFECYCLE_N__BY__<VENDOR>__K` |"), "{page}");
        assert!(
            page.contains(
                "| `n.lead.<vendor>.<workflow>` | `LIFECYCLE_N__LEAD__<VENDOR>__<WORKFLOW>` | string | none |"
            ),
            "{page}"
        );
    }

    #[test]
    fn defaults_are_written_as_toml() {
        assert_eq!(
            toml_value(&json!({"requests": 80, "per": "2s", "share": 1.0, "x": null})),
            "{ per = \"2s\", requests = 80, share = 1.0 }"
        );
        assert_eq!(toml_value(&json!(["a", 1])), "[\"a\", 1]");
        assert_eq!(cell("a | b"), "a \\| b");
        assert_eq!(slug("`[vendors.pipedrive]`"), "vendorspipedrive");
    }
}
