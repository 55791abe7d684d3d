//! The list of simulated vendors and the shape every vendor module has.
//!
//! Adding a vendor = one folder `src/<vendor>/` whose `State` implements [`VendorSim`], plus one
//! line in the `vendors!` invocation below (variant, module, path prefix) and its `Flags` in
//! [`Config`]. The macro derives the [`Vendor`] enum, its names and prefixes, and [`Tenants`],
//! which holds one `State` per vendor.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use crate::sim::Sim;
use crate::{Config, Fixture};

/// What every vendor module provides. The framework (control endpoints, faults, call log) only
/// talks to vendors through this trait.
pub trait VendorSim: Send + 'static {
    /// The tenant as at start-up with `fixture`: credential owners always, plus fixture data.
    fn new(config: &Config, fixture: Fixture) -> Self
    where
        Self: Sized;

    /// Add data from the vendor's part of a `POST /_sim/seed` body and return what was created
    /// (with the ids the simulator assigned). All or nothing: on error nothing changes.
    fn seed(&mut self, body: Value) -> Result<Value, String>;

    /// The vendor's data for `GET /_sim/state`: a JSON object (users, roles, ...). The framework
    /// adds `counters` and `log`.
    fn snapshot(&self) -> Value;

    /// Current runtime knobs for `GET /_sim/config`: a JSON object.
    fn config(&self) -> Value;

    /// Apply a partial update of the knobs from `POST /_sim/config`.
    fn configure(&mut self, patch: Value) -> Result<(), String>;

    /// The response for an injected `status` fault, in the vendor's own error format. A 429 must
    /// look exactly like the vendor's real rate-limit answer, headers included.
    fn injected_error(&self, uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response;

    /// The vendor's API, relative to its prefix. `sim` is there for the vendor's own
    /// middleware (auth, rate limiting), which needs the state when it is built.
    fn router(sim: Sim) -> Router<Sim>
    where
        Self: Sized;

    /// APIs the vendor serves outside its prefix, as `(mount path, router)`: Jira's SCIM
    /// directory lives on another host in reality. Faults, the call log and counters apply as
    /// under the prefix, with paths relative to the mount. Most vendors have none.
    fn extra_mounts(_sim: Sim) -> Vec<(&'static str, Router<Sim>)>
    where
        Self: Sized,
    {
        Vec::new()
    }
}

macro_rules! vendors {
    ($($variant:ident => $module:ident, $prefix:literal;)+) => {
        /// A simulated vendor.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Vendor {
            $($variant,)+
        }

        impl Vendor {
            /// Every vendor, in registry order.
            pub const ALL: &'static [Vendor] = &[$(Vendor::$variant,)+];

            /// The key used in control endpoints (`"pipedrive"`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(Vendor::$variant => stringify!($module),)+
                }
            }

            /// The path prefix the vendor is served under (its base URL path).
            pub fn prefix(self) -> &'static str {
                match self {
                    $(Vendor::$variant => $prefix,)+
                }
            }

            pub fn from_name(name: &str) -> Option<Vendor> {
                Vendor::ALL.iter().copied().find(|v| v.name() == name)
            }

            pub(crate) fn router(self, sim: Sim) -> Router<Sim> {
                match self {
                    $(Vendor::$variant => <crate::$module::State as VendorSim>::router(sim),)+
                }
            }

            pub(crate) fn extra_mounts(self, sim: Sim) -> Vec<(&'static str, Router<Sim>)> {
                match self {
                    $(Vendor::$variant => <crate::$module::State as VendorSim>::extra_mounts(sim),)+
                }
            }
        }

        /// One tenant per vendor.
        pub struct Tenants {
            $(pub $module: crate::$module::State,)+
        }

        impl Tenants {
            pub fn new(config: &Config, fixture: Fixture) -> Self {
                Tenants {
                    $($module: <crate::$module::State as VendorSim>::new(config, fixture),)+
                }
            }

            pub fn get(&self, vendor: Vendor) -> &dyn VendorSim {
                match vendor {
                    $(Vendor::$variant => &self.$module,)+
                }
            }

            pub fn get_mut(&mut self, vendor: Vendor) -> &mut dyn VendorSim {
                match vendor {
                    $(Vendor::$variant => &mut self.$module,)+
                }
            }
        }
    };
}

vendors! {
    Pipedrive => pipedrive, "/pipedrive";
    CrowdStrike => crowdstrike, "/crowdstrike";
    Jira => jira, "/jira/rest/api/3";
    Calendly => calendly, "/calendly";
    CircleCi => circleci, "/circleci/api/v2";
    GitHub => github, "/github";
    Hibob => hibob, "/hibob";
    Bamboohr => bamboohr, "/bamboohr";
    Personio => personio, "/personio";
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Applies a vendor's part of a `/_sim/seed` body all or nothing: to a copy
/// of the tenant, kept only if everything applied.
pub fn seed_atomically<S, T>(
    state: &mut S,
    body: Value,
    apply: impl FnOnce(&mut S, T) -> Result<Value, String>,
) -> Result<Value, String>
where
    S: Clone,
    T: serde::de::DeserializeOwned,
{
    let seed: T = serde_json::from_value(body).map_err(|e| format!("invalid seed: {e}"))?;
    let mut next = state.clone();
    let created = apply(&mut next, seed)?;
    *state = next;
    Ok(created)
}

/// One field of a partial update (`PUT`, `PATCH`): set it when a value was sent and differs, and
/// note `name` among the changed fields, which the mutation log and the modified time go by.
pub fn update_field<T: PartialEq>(
    field: &mut T,
    value: Option<T>,
    name: &'static str,
    changed: &mut Vec<&'static str>,
) {
    if let Some(v) = value {
        if *field != v {
            *field = v;
            changed.push(name);
        }
    }
}
