//! The settings reference, docs/operators/settings.md, generated from the
//! config types so that it cannot drift from them.
//!
//! The types derive [`schemars::JsonSchema`] beside `Deserialize`: the derive
//! reads the same serde attributes the parser obeys (names, `default`,
//! `deny_unknown_fields`, `try_from`), takes each field's doc comment as its
//! description, and each default from the code (`Default` impls, `default =
//! "fn"`), serialized as the file would write it. Why schemars rather than a
//! hand-written trait: it is well kept, it follows serde exactly, and a field
//! added without a description or with a changed default changes the page, so
//! the page's check (in `lifecycle-ctl`) fails until it is regenerated. Where
//! a Rust type says nothing to an operator (a `Duration` read as `"5m"`, a
//! secret, a table keyed by vendor), the field names a stand-in from
//! [`types`] with `#[schemars(with = ...)]`; parsing is unchanged.
//!
//! `lifecycle-ctl settings --markdown` adds the vendors' tables and the HR
//! sources' (their types live beside their code) and writes the page.

mod render;
pub mod types;

pub use render::{markdown, Part};

use crate::{BrokerSettings, DatabaseSettings, Settings};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

/// The schema of `T` with every subschema inline (the page walks it as a tree).
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Every section of [`Settings`] (`[vendors.*]` and `[hris.<source>]` are their modules').
pub fn settings_schema() -> Value {
    let mut schema = schema_of::<Settings>();
    // A secret cannot be serialized (so that nothing writes one out by
    // mistake), so the derive shows no default for one: the two with a
    // default take it from the code here.
    for (section, url) in [
        ("database", DatabaseSettings::default().url.expose().to_string()),
        ("broker", BrokerSettings::default().url.expose().to_string()),
    ] {
        schema["properties"][section]["properties"]["url"]["default"] = Value::String(url);
    }
    schema
}

#[cfg(test)]
mod tests;
