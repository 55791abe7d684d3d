//! How the configuration's own value types appear in the settings reference.
//!
//! The derive knows Rust types; an operator knows what to write. Each type
//! below stands in for one kind of value (`#[schemars(with = "...")]` on the
//! field) and says, in `x-type`, what the page's Type column shows. Only the
//! schema changes: parsing stays with serde as before.

use crate::Secret;
use lifecycle_domain::{VendorKind, Workflow};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;
use std::borrow::Cow;
use std::marker::PhantomData;

/// The keyword holding a value's type in operator words.
pub const X_TYPE: &str = "x-type";
/// The keyword on a table keyed by vendor (or workflow): the placeholder its keys take in a path.
pub const X_KEY: &str = "x-key";

macro_rules! inline_schema {
    ($name:literal) => {
        fn schema_name() -> Cow<'static, str> {
            $name.into()
        }
        fn inline_schema() -> bool {
            true
        }
    };
}

/// A duration in humantime form: `"30s"`, `"5m"`, `"1h 30m"`, `"3d"`.
pub struct HumanDuration;

impl JsonSchema for HumanDuration {
    inline_schema!("HumanDuration");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", X_TYPE: "duration" })
    }
}

/// A credential: a string, or `{ file = "PATH" }` (see [`Secret`]).
impl JsonSchema for Secret {
    inline_schema!("Secret");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "object", "properties": { "file": { "type": "string" } }, "required": ["file"], "additionalProperties": false }
            ],
            X_TYPE: "secret"
        })
    }
}

/// Secrets given as a list, a comma-separated string, or a file with one per line.
pub struct SecretList;

impl JsonSchema for SecretList {
    inline_schema!("SecretList");
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["array", "string", "object"],
            "items": generator.subschema_for::<Secret>(),
            X_TYPE: "list of secrets (or one comma-separated string, or `{ file = \"PATH\" }`, one per line)"
        })
    }
}

/// `producer.intake_tokens`: [`SecretList`] whose entries may also be tables.
pub struct IntakeTokens;

impl JsonSchema for IntakeTokens {
    inline_schema!("IntakeTokens");
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["array", "string", "object"],
            "items": generator.subschema_for::<Secret>(),
            X_TYPE: "list of secrets or `{ token = SECRET, label = \"..\", plans = true }` tables \
                     (or one comma-separated string, or `{ file = \"PATH\" }`, one per line)"
        })
    }
}

/// A vendor's name, as `[vendors.<name>]` spells it.
pub struct VendorName;

impl JsonSchema for VendorName {
    inline_schema!("VendorName");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = VendorKind::ALL.iter().map(|v| v.as_str()).collect();
        json_schema!({ "type": "string", "enum": names, X_TYPE: "vendor name" })
    }
}

/// A workflow's name (`joiner`, `mover`, `leaver`, `reassign_deals`).
pub struct WorkflowName;

impl JsonSchema for WorkflowName {
    inline_schema!("WorkflowName");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Workflow::ALL.iter().map(|w| w.as_str()).collect();
        json_schema!({ "type": "string", "enum": names, X_TYPE: "workflow name" })
    }
}

/// A table with one key per vendor (`[retry.vendors.pipedrive]`): a misspelt
/// vendor is refused at load.
pub struct ByVendor<V>(PhantomData<V>);

impl<V: JsonSchema> JsonSchema for ByVendor<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("ByVendor_{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        keyed::<V>(generator, "vendor", VendorKind::ALL.iter().map(|v| v.as_str()).collect())
    }
}

/// A table with one key per workflow.
pub struct ByWorkflow<V>(PhantomData<V>);

impl<V: JsonSchema> JsonSchema for ByWorkflow<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("ByWorkflow_{}", V::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        keyed::<V>(generator, "workflow", Workflow::ALL.iter().map(|w| w.as_str()).collect())
    }
}

fn keyed<V: JsonSchema>(generator: &mut SchemaGenerator, key: &str, names: Vec<&str>) -> Schema {
    json_schema!({
        "type": "object",
        "propertyNames": { "enum": names },
        "additionalProperties": generator.subschema_for::<V>(),
        X_KEY: key
    })
}

/// What a person gets at each vendor, written as an event's `apps`
/// (`{ pipedrive = { role = "Sales Rep" }, calendly = {} }`).
pub struct AppsByVendor;

impl JsonSchema for AppsByVendor {
    inline_schema!("AppsByVendor");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            X_TYPE: "table: vendor → its app request, as in an event's `apps` (`{ pipedrive = { role = \"Sales Rep\" } }`)"
        })
    }
}

/// `"<count>/<window>"`, see [`crate::safety::Threshold`].
impl JsonSchema for crate::safety::Threshold {
    inline_schema!("Threshold");
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", X_TYPE: "threshold: a count per window (`\"50/1h\"`)" })
    }
}

/// A schema's `x-type`, when it has one.
pub(crate) fn x_type(schema: &Value) -> Option<&str> {
    schema.get(X_TYPE).and_then(Value::as_str)
}
