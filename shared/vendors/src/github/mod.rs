//! GitHub organisations (`https://api.github.com`). Being written: see the brief.

use crate::registry::{Common, VendorConfigError};
use lifecycle_domain::VendorKind;
use lifecycle_engine::Connector;
use std::sync::Arc;

pub fn connector(_table: &serde_json::Value, _common: &Common) -> Result<Arc<dyn Connector>, VendorConfigError> {
    Err(VendorConfigError::invalid(VendorKind::Github, "not built yet"))
}
