//! `lifecycle-ctl settings`: the settings reference, docs/operators/settings.md,
//! generated from the config types (see `lifecycle_config::reference`). This is
//! the one crate that sees every section: the core settings, each vendor's
//! `[vendors.<name>]` and each HR source's `[hris.<source>]`.

use lifecycle_config::reference::{self, Part};
use lifecycle_domain::VendorKind;
use lifecycle_hris::SourceKind;
use serde_json::{json, Value};

/// The command that writes the page, from the repository's root.
pub const REGENERATE: &str = "cargo run -q -p lifecycle-ctl -- settings --markdown > docs/operators/settings.md";

const TITLE: &str = "Settings reference";

const INTRO: &str = r#"Every setting of every lifecycle binary (`lifecycle-producer`, `lifecycle-worker`,
`lifecycle-ctl`): one table per TOML table. Each binary reads the sections it uses and
ignores none: a misspelt key or vendor stops it at start, naming it.

<!-- Generated from the config types by `lifecycle-ctl settings --markdown`: do not edit.
     The descriptions are the fields' doc comments; change them there and regenerate. -->

**Where settings come from**, later ones winning: the defaults below; a TOML file
(`--config PATH`, else `$LIFECYCLE_CONFIG`, else `./lifecycle.toml` when present); then
environment variables.

**Environment variables**: `LIFECYCLE_` and the key's path in capitals, a double underscore
for each dot (`worker.lease` is `LIFECYCLE_WORKER__LEASE`). A value is read as TOML where it
parses as one (`8`, `true`, `["a", "b"]`, `[{ name = "x" }]`), else as a string. A list of
tables (`[[approval.rules]]`) is given whole, in one variable. `<vendor>` stands for a vendor's
name (`pipedrive`, `jira`, ...), `<workflow>` for a workflow's (`joiner`, `mover`, `leaver`).

**Types**: a *duration* is written `"30s"`, `"5m"`, `"2h"`, `"3d"`, `"1h 30m"`. A *secret* is a
string or `{ file = "/run/secrets/name" }` (the file's content, trailing newline removed); in the
environment, add `__FILE` to read it from a file (`LIFECYCLE_ADMIN__PASSWORD__FILE`). No secret
is ever printed, logged or put in an error.

**Defaults**: *unset* means the setting has no value and the description says what happens
then; *none* is an empty list or table; **required** settings must be given when their table is.

Other variables: `RUST_LOG` (log level, default `info`); `OTEL_EXPORTER_OTLP_*` (traces, see
`telemetry.otlp_endpoint`); `LIFECYCLE_CTL_ACTOR` (who `lifecycle-ctl` acts as in the audit log)."#;

const VENDORS: &str = "One table per vendor lifecycle manages; a vendor without a table is not \
    used. Each vendor's module reads its own table and refuses unknown keys. Base URLs must be \
    `https://` unless `worker.allow_plain_http` is set.";

/// Every part of the page: the core settings, then each vendor's and HR source's table.
pub fn parts() -> Vec<Part> {
    let mut parts = vec![
        Part { path: String::new(), schema: reference::settings_schema() },
        Part { path: "vendors".into(), schema: json!({ "description": VENDORS }) },
    ];
    for vendor in VendorKind::ALL {
        parts.push(Part {
            path: format!("vendors.{vendor}"),
            schema: lifecycle_vendors::registry::settings_schema(vendor),
        });
    }
    for source in SourceKind::ALL {
        parts.push(Part { path: format!("hris.{source}"), schema: source.settings_schema() });
    }
    parts
}

/// The page.
pub fn markdown() -> String {
    reference::markdown(TITLE, INTRO, &parts())
}

/// One JSON Schema of the whole file (for an editor's TOML support): the core
/// settings with every vendor's and HR source's table in place.
pub fn json_schema() -> Value {
    let mut schema = reference::settings_schema();
    for part in parts().into_iter().skip(2) {
        let (section, name) = part.path.split_once('.').expect("vendors.<name> or hris.<source>");
        let mut table = part.schema;
        if let Some(t) = table.as_object_mut() {
            t.remove("$schema");
        }
        schema["properties"][section]["type"] = json!("object");
        schema["properties"][section]["properties"][name] = table;
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_page_is_what_the_config_types_say() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operators/settings.md");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = markdown();
        if committed != generated {
            let diff = similar::TextDiff::from_lines(&committed, &generated)
                .unified_diff()
                .context_radius(1)
                .header("docs/operators/settings.md", "generated from the config types")
                .to_string();
            let lines: Vec<&str> = diff.lines().collect();
            let more = lines.len().saturating_sub(40);
            panic!(
                "docs/operators/settings.md is stale; regenerate it from the repository's root with\n\n    {REGENERATE}\n\n{}{}",
                lines[..lines.len().min(40)].join("\n"),
                if more > 0 { format!("\n... and {more} more lines of diff") } else { String::new() }
            );
        }
    }

    #[test]
    fn every_setting_of_every_part_has_a_description() {
        let page = markdown();
        let bare: Vec<&str> = page.lines().filter(|l| l.starts_with("| `") && l.ends_with("|  |")).collect();
        assert!(bare.is_empty(), "settings without a doc comment (write one on the field): {bare:#?}");
    }

    #[test]
    fn every_vendor_and_hr_source_has_its_table() {
        let page = markdown();
        for vendor in VendorKind::ALL {
            assert!(page.contains(&format!("### `[vendors.{vendor}]`")), "{vendor}");
        }
        for source in SourceKind::ALL {
            assert!(page.contains(&format!("### `[hris.{source}]`")), "{source}");
        }
        let schema = json_schema();
        assert!(schema["properties"]["vendors"]["properties"]["pipedrive"]["properties"]["api_token"].is_object());
    }
}
