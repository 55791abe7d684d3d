//! What every vendor module's configuration is checked with: its table parsed
//! into its `Config`, its base URL held to https, and the error naming the
//! vendor. A leaf: the vendors use it, and the registry that builds them.

use lifecycle_domain::VendorKind;
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
    /// `worker.allow_plain_http`: accept `http://` base URLs (the simulator).
    pub allow_plain_http: bool,
}

/// Checks a vendor's base URL (`field` names it in errors): an absolute
/// `https://` URL, or `http://` when `worker.allow_plain_http` allows it.
pub(crate) fn base_url(
    vendor: VendorKind,
    field: &str,
    value: &str,
    common: &Common,
) -> Result<url::Url, VendorConfigError> {
    let url = url::Url::parse(value).map_err(|e| VendorConfigError::invalid(vendor, format!("{field}: {e}")))?;
    match url.scheme() {
        "https" if !url.cannot_be_a_base() => Ok(url),
        "http" if common.allow_plain_http && !url.cannot_be_a_base() => Ok(url),
        "http" => Err(VendorConfigError::invalid(
            vendor,
            format!(
                "{field}: {} is plain http, which would send the credential in clear text; use https:// \
                 (worker.allow_plain_http = true allows http for a simulator on this machine)",
                url.origin().ascii_serialization()
            ),
        )),
        _ => Err(VendorConfigError::invalid(vendor, format!("{field}: must be an https:// URL"))),
    }
}

/// Parses a vendor's table into its `Config`, naming the vendor in errors.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    vendor: VendorKind,
    table: &serde_json::Value,
) -> Result<T, VendorConfigError> {
    serde_json::from_value(table.clone()).map_err(|e| VendorConfigError::invalid(vendor, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(allow_plain_http: bool) -> Common {
        Common { http_timeout: Duration::from_secs(5), allow_plain_http }
    }

    #[test]
    fn base_urls_are_https_unless_plain_http_is_allowed() {
        let v = VendorKind::Pipedrive;
        assert!(base_url(v, "base_url", "https://acme.pipedrive.com", &common(false)).is_ok());
        let err = base_url(v, "base_url", "http://acme.pipedrive.com", &common(false)).unwrap_err().to_string();
        assert!(err.contains("[vendors.pipedrive]") && err.contains("base_url") && err.contains("https://"), "{err}");
        assert!(base_url(v, "base_url", "http://127.0.0.1:9900/pipedrive", &common(true)).is_ok());
        assert!(base_url(v, "base_url", "ftp://example.com/", &common(true)).is_err());
        assert!(base_url(v, "base_url", "mailto:a@example.com", &common(true)).is_err());
    }
}
