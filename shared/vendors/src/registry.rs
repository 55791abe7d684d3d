//! Builds a worker's vendors from its `[vendors.*]` tables.

use lifecycle_config::Settings;
use lifecycle_domain::VendorKind;
use lifecycle_engine::{Connector, Registry};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum VendorConfigError {
    #[error("[vendors.{vendor}]: {message}")]
    Invalid { vendor: String, message: String },
}

impl VendorConfigError {
    pub fn invalid(vendor: VendorKind, message: impl std::fmt::Display) -> Self {
        VendorConfigError::Invalid { vendor: vendor.to_string(), message: message.to_string() }
    }
}

/// What every vendor module gets besides its own table.
#[derive(Debug, Clone)]
pub struct Common {
    pub http_timeout: Duration,
}

pub fn build_registry(settings: &Settings) -> Result<Registry, VendorConfigError> {
    let common = Common { http_timeout: settings.worker.http_timeout };
    let mut registry = Registry::new();
    for (name, table) in &settings.vendors {
        let vendor = VendorKind::from_str(name)
            .map_err(|e| VendorConfigError::Invalid { vendor: name.clone(), message: e.to_string() })?;
        let connector: Arc<dyn Connector> = match vendor {
            VendorKind::Pipedrive => crate::pipedrive::connector(table, &common)?,
            VendorKind::Crowdstrike => crate::crowdstrike::connector(table, &common)?,
            VendorKind::Circleci => crate::circleci::connector(table, &common)?,
            VendorKind::Calendly => crate::calendly::connector(table, &common)?,
            VendorKind::Jira => crate::jira::connector(table, &common)?,
        };
        registry.insert(vendor, connector);
    }
    Ok(registry)
}

/// Parses a vendor's table into its `Config`, naming the vendor in errors.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    vendor: VendorKind,
    table: &serde_json::Value,
) -> Result<T, VendorConfigError> {
    serde_json::from_value(table.clone()).map_err(|e| VendorConfigError::invalid(vendor, e))
}
