//! The RabbitMQ nodes a process may connect to (`broker.url` and
//! `broker.addresses`), tried in turn.
//!
//! A cluster's nodes all serve every queue (a quorum queue is reached through
//! any node), so a client needs one node that answers, not a particular one.
//! Each connect starts at the next address in a rotation that begins at a
//! random one, so a fleet spreads over the nodes and a client whose node went
//! away starts with another; an address that refuses, fails or does not
//! answer the handshake in time is skipped for the next.

use crate::BrokerError;
use lapin::uri::AMQPUri;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one address may take to accept a connection when there are
/// others to try: a paused (SIGSTOPped) node's kernel still completes the TCP
/// handshake, and then nothing answers. With a single address the caller's
/// own bound ([`crate::SETUP_TIMEOUT`]) applies, as before there were several.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One node: the URL to connect with, and `host:port` to name it in logs
/// (the URL carries the password and is never printed).
#[derive(Clone)]
struct Endpoint {
    uri: AMQPUri,
    label: String,
}

/// The addresses of a broker (one node or a cluster's), with the credentials,
/// virtual host and options of one URL. Cheap to clone; clones share the
/// rotation.
#[derive(Clone)]
pub struct Endpoints {
    endpoints: Result<Arc<[Endpoint]>, String>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.labels()).finish()
    }
}

impl Endpoints {
    /// `url` alone when `addresses` is empty; otherwise one endpoint per
    /// address (`host:port`, `host`, `[v6]:port`), each with `url`'s user,
    /// password, virtual host and query. A bad URL or address is kept as an
    /// error that [`Endpoints::check`] and every connect report.
    pub fn new(url: &str, addresses: &[String]) -> Self {
        let endpoints: Result<Arc<[Endpoint]>, String> = parse(url, addresses).map(Arc::from);
        let start = match &endpoints {
            Ok(e) if e.len() > 1 => rand::random_range(0..e.len()),
            _ => 0,
        };
        Self { endpoints, next: Arc::new(AtomicUsize::new(start)) }
    }

    /// Whether the URL and every address parse (config validation).
    pub fn check(&self) -> Result<(), BrokerError> {
        self.endpoints.as_ref().map(|_| ()).map_err(|e| BrokerError::Connect(e.clone()))
    }

    /// `host:port` of each address, in order (no credentials).
    pub fn labels(&self) -> Vec<String> {
        match &self.endpoints {
            Ok(e) => e.iter().map(|e| e.label.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The order the next connect tries the addresses in: the rotation's
    /// next start, then the others in turn.
    fn next_order(&self) -> Result<Vec<Endpoint>, BrokerError> {
        let all = self.endpoints.as_ref().map_err(|e| BrokerError::Connect(e.clone()))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        Ok((0..all.len()).map(|i| all[(start + i) % all.len()].clone()).collect())
    }

    /// Opens a connection to the first address that accepts one, named
    /// `name` (as the management UI shows it); logs which node it is.
    pub async fn connect(&self, name: &str) -> Result<lapin::Connection, BrokerError> {
        let order = self.next_order()?;
        let several = order.len() > 1;
        let mut failures = Vec::new();
        for endpoint in order {
            let props = lapin::ConnectionProperties::default().with_connection_name(name.into());
            let attempt = lapin::Connection::connect_uri(endpoint.uri.clone(), props);
            let result = if several {
                tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
                    .await
                    .unwrap_or_else(|_| Err(lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
            } else {
                attempt.await
            };
            match result {
                Ok(conn) => {
                    if several {
                        tracing::info!(broker = %endpoint.label, connection = name, "connected to RabbitMQ");
                    }
                    return Ok(conn);
                }
                Err(e) => {
                    if several {
                        tracing::warn!(broker = %endpoint.label, connection = name, error = %e, "RabbitMQ node unreachable, trying the next");
                    }
                    failures.push(format!("{}: {e}", endpoint.label));
                }
            }
        }
        Err(BrokerError::Connect(failures.join("; ")))
    }
}

impl From<&str> for Endpoints {
    fn from(url: &str) -> Self {
        Self::new(url, &[])
    }
}
impl From<String> for Endpoints {
    fn from(url: String) -> Self {
        Self::new(&url, &[])
    }
}
impl From<&String> for Endpoints {
    fn from(url: &String) -> Self {
        Self::new(url, &[])
    }
}
impl From<&Endpoints> for Endpoints {
    fn from(e: &Endpoints) -> Self {
        e.clone()
    }
}

fn parse(url: &str, addresses: &[String]) -> Result<Vec<Endpoint>, String> {
    // The parser's message may quote the URL, password included: say only what is wrong.
    let mut base: AMQPUri =
        url.parse().map_err(|_| "broker.url is not an AMQP URL (amqp://user:pass@host:port/vhost)")?;
    // RabbitMQ's default heartbeat is 60 s: see crate::HEARTBEAT_SECS.
    if base.query.heartbeat.is_none() {
        base.query.heartbeat = Some(crate::HEARTBEAT_SECS);
    }
    let endpoint = |uri: AMQPUri| Endpoint { label: label(&uri.authority.host, uri.authority.port), uri };
    if addresses.is_empty() {
        return Ok(vec![endpoint(base)]);
    }
    addresses
        .iter()
        .map(|a| {
            let (host, port) = address(a, base.authority.port)?;
            let mut uri = base.clone();
            uri.authority.host = host;
            uri.authority.port = port;
            Ok(endpoint(uri))
        })
        .collect()
}

fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host:port`, `host` (the URL's port) or `[v6]:port`.
fn address(a: &str, default_port: u16) -> Result<(String, u16), String> {
    let a = a.trim();
    let bad = || format!("broker.addresses: {a:?} is not host:port");
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match a.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (a, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_url_is_one_endpoint_as_before() {
        let e = Endpoints::from("amqp://guest:secret@mq:5672/%2f");
        assert_eq!(e.labels(), ["mq:5672"]);
        let uri = &e.next_order().unwrap()[0].uri;
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.query.heartbeat, Some(crate::HEARTBEAT_SECS));
    }

    #[test]
    fn addresses_take_the_urls_credentials_vhost_and_options() {
        let e = Endpoints::new(
            "amqp://app:s3cret@ignored:5672/prod?heartbeat=30&frame_max=8192",
            &addrs(&["n1:5681", "n2", "[::1]:5683"]),
        );
        assert_eq!(e.labels(), ["n1:5681", "n2:5672", "[::1]:5683"]);
        for ep in e.endpoints.as_ref().unwrap().iter() {
            assert_eq!(ep.uri.authority.userinfo.username, "app");
            assert_eq!(ep.uri.authority.userinfo.password, "s3cret");
            assert_eq!(ep.uri.vhost, "prod");
            assert_eq!(ep.uri.query.heartbeat, Some(30), "the URL's own heartbeat is kept");
            assert_eq!(ep.uri.query.frame_max, Some(8192));
        }
    }

    #[test]
    fn each_connect_starts_at_the_next_address_and_tries_all() {
        let e = Endpoints::new("amqp://g:g@x/%2f", &addrs(&["a:1", "b:2", "c:3"]));
        let orders: Vec<Vec<String>> =
            (0..4).map(|_| e.next_order().unwrap().into_iter().map(|ep| ep.label).collect()).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, ["a:1", "b:2", "c:3"], "every address is tried once: {order:?}");
        }
        // Consecutive connects start one further on (a clone shares the rotation).
        let starts: Vec<&str> = orders.iter().map(|o| o[0].as_str()).collect();
        let pos = |s: &str| ["a:1", "b:2", "c:3"].iter().position(|x| *x == s).unwrap();
        for w in starts.windows(2) {
            assert_eq!((pos(w[0]) + 1) % 3, pos(w[1]), "{starts:?}");
        }
        let clone = Endpoints::from(&e);
        assert_eq!(clone.next_order().unwrap()[0].label, ["a:1", "b:2", "c:3"][(pos(starts[3]) + 1) % 3]);
    }

    #[test]
    fn a_fleet_starts_at_different_addresses() {
        let list = addrs(&["a:1", "b:2", "c:3"]);
        let firsts: std::collections::HashSet<String> =
            (0..60).map(|_| Endpoints::new("amqp://g:g@x/%2f", &list).next_order().unwrap()[0].label.clone()).collect();
        assert_eq!(firsts.len(), 3, "60 processes all started at {firsts:?}");
    }

    #[test]
    fn bad_urls_and_addresses_are_errors_that_never_show_the_password() {
        for bad in ["host:", ":5672", "host:notaport", "host:0", "a:b:c", "[::1", "user@host:1", "host:70000"] {
            let e = Endpoints::new("amqp://app:s3cret@h/%2f", &addrs(&["ok:1", bad]));
            let err = e.check().unwrap_err().to_string();
            assert!(err.contains("broker.addresses"), "{bad}: {err}");
            assert!(!err.contains("s3cret"));
        }
        let err = Endpoints::from("http://app:s3cret@h/").check().unwrap_err().to_string();
        assert!(err.contains("broker.url") && !err.contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn connect_skips_addresses_that_refuse_and_names_each_failure() {
        // Nothing listens on port 1 or 2 of this machine: both refuse at once.
        let e = Endpoints::new("amqp://g:s3cret@x/%2f", &addrs(&["127.0.0.1:1", "127.0.0.1:2"]));
        let err = e.connect("test").await.unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:1") && err.contains("127.0.0.1:2"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
