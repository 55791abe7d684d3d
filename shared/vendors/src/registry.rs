//! Builds a worker's vendors from its `[vendors.*]` tables.

use lifecycle_config::Settings;
use lifecycle_domain::VendorKind;
use lifecycle_engine::{Connector, Registry};
use std::sync::Arc;

pub use crate::vendor_config::{Common, VendorConfigError};

pub fn build_registry(settings: &Settings) -> Result<Registry, VendorConfigError> {
    let common =
        Common { http_timeout: settings.worker.http_timeout, allow_plain_http: settings.worker.allow_plain_http };
    let mut registry = Registry::new();
    for (&vendor, table) in &settings.vendors {
        registry.insert(connector(vendor, table, &common)?);
    }
    Ok(registry)
}

/// The connector of `vendor` from its `[vendors.<name>]` table: the one place
/// that maps a vendor to its module.
pub fn connector(
    vendor: VendorKind,
    table: &serde_json::Value,
    common: &Common,
) -> Result<Arc<dyn Connector>, VendorConfigError> {
    match vendor {
        VendorKind::Pipedrive => crate::pipedrive::connector(table, common),
        VendorKind::Crowdstrike => crate::crowdstrike::connector(table, common),
        VendorKind::Jira => crate::jira::connector(table, common),
        VendorKind::Calendly => crate::calendly::connector(table, common),
        VendorKind::Circleci => crate::circleci::connector(table, common),
        VendorKind::Github => crate::github::connector(table, common),
    }
}

/// A vendor's `[vendors.<name>]` table as the settings reference shows it
/// (docs/operators/settings.md): its module's `Config`.
pub fn settings_schema(vendor: VendorKind) -> serde_json::Value {
    use lifecycle_config::reference::schema_of;
    match vendor {
        VendorKind::Pipedrive => schema_of::<crate::pipedrive::Config>(),
        VendorKind::Crowdstrike => schema_of::<crate::crowdstrike::Config>(),
        VendorKind::Jira => schema_of::<crate::jira::Config>(),
        VendorKind::Calendly => schema_of::<crate::calendly::Config>(),
        VendorKind::Circleci => schema_of::<crate::circleci::Config>(),
        VendorKind::Github => schema_of::<crate::github::Config>(),
    }
}
