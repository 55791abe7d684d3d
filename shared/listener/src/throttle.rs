//! Slows down guessing: failed authentications are counted per client
//! address, and past a few, that address's next attempt must wait, longer
//! after each further failure.
//!
//! - The first `free_failures` failures cost nothing (typos).
//! - After that, each failure closes the address's gate for `base_delay`,
//!   doubled for every further failure, up to `max_delay`. With
//!   [`AuthThrottle::admit`], an attempt that
//!   arrives while the gate is closed waits for it when the wait is short
//!   (`max_wait`: a person retyping a password notices nothing), or is
//!   refused at once with 429 and `Retry-After`; either way its credential
//!   is not looked at before the gate opens. The wait is part of the gate,
//!   not of the answer: an answer delayed only when the guess was wrong
//!   would tell a client that gives up early what it wanted to know.
//!   With [`AuthThrottle::guard_by_verdict`] (the intake), see below.
//! - With `admit`, while an address has failures, its attempts are checked
//!   one at a time (a burst in parallel gets no more checks than one after
//!   another).
//! - A success reported through [`Attempt::succeeded`] clears the address's
//!   record; a record with no failure for `forget_after` is dropped.
//!   Addresses with no failures are not limited.
//! - After `warn_after` failures, and at every doubling since, a warning
//!   names the address and the count (never a credential: this module
//!   never sees one).
//! - The table is bounded (`max_tracked`) without forgetting anyone who is
//!   being slowed down: when it is full of records still remembered, the
//!   failures of addresses not in it are counted together in one shared
//!   overflow record (throttled as one address) rather than evicting a
//!   record. Many addresses cannot wash a guesser's record out; at worst
//!   they are throttled together.
//!
//! IPv6 clients are counted by their /64, which one host usually holds whole.
//! Behind a reverse proxy every connection comes from the proxy: name it in
//! [`TrustedProxies`] (`producer.trusted_proxies`, `admin.trusted_proxies`)
//! and the client is read from its `X-Forwarded-For` instead, else everyone
//! behind it shares one record, and a guesser slows everybody down.
//!
//! Two ways to use it:
//!
//! - The admin listener checks credentials itself, first, and counts a wrong
//!   one with [`AuthThrottle::wrong`] (429 while the address's gate is
//!   closed): a right credential is never held back. ([`AuthThrottle::admit`],
//!   which makes an attempt wait for the gate before its credential is looked
//!   at, is no longer used by any listener.)
//! - The intake's routes are wrapped by [`AuthThrottle::guard_by_verdict`]
//!   (one throttle, one table, per kind of credential: intake, SCIM,
//!   webhook). Nothing is held back before the handler runs: a request
//!   presenting a valid credential is never delayed or refused. The handler's
//!   own credential check marks its answer with [`AuthVerdict::Wrong`] when a
//!   credential was presented and is wrong, and that mark is the only thing
//!   the guard judges (never the status: a 400 from an extractor, a 404 or a
//!   2xx says nothing about the credential). A wrong credential from an
//!   address whose gate is closed is answered 429 with `Retry-After` instead
//!   of 401, and counted. Nothing clears a record but time, so a request
//!   with some other valid credential cannot wash a guesser's failures out.
//!   What protects a credential from being found by guessing is its length
//!   (tokens are long and random); the guard sheds, reports and slows the
//!   guessing of honest-but-wrong and hostile clients that honour 429.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// What a route's own credential check concluded, put in its response's
/// extensions by the code that checked (see [`AuthThrottle::guard_by_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// A credential was presented and is valid: never throttled.
    Valid,
    /// A credential was presented and is wrong: counted against the address.
    Wrong,
}

impl AuthVerdict {
    /// `response` marked with this verdict.
    pub fn mark(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// How hard failures are punished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures from one address before any delay.
    pub free_failures: u32,
    /// The delay after the first failure past the free ones; doubled after each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// An attempt waits for its address's gate when it opens within this;
    /// else it is refused at once (429). Kept well below request timeouts.
    pub max_wait: Duration,
    /// Failures from one address before a warning is logged.
    pub warn_after: u32,
    /// A record with no failure for this long is dropped.
    pub forget_after: Duration,
    /// Addresses remembered at most; past it, once the forgotten records are
    /// dropped, new addresses share one overflow record (none is evicted).
    pub max_tracked: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
            max_wait: Duration::from_secs(2),
            warn_after: 5,
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

impl ThrottlePolicy {
    /// How long the gate stays closed after the `failures`-th failure.
    fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_failures).min(30);
        self.base_delay.saturating_mul(1u32 << doublings).min(self.max_delay)
    }
}

/// Failed authentications per client address, for one listener.
#[derive(Clone)]
pub struct AuthThrottle {
    listener: &'static str,
    policy: ThrottlePolicy,
    proxies: Arc<TrustedProxies>,
    records: Arc<Mutex<HashMap<Client, Record>>>,
}

/// Proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// `["10.0.0.0/8", "192.0.2.10", "fd00::/8"]`; an error names the entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for entry in list {
            let entry = entry.as_ref().trim();
            let bad = || format!("{entry:?} is not an IP address or a CIDR range (like 10.0.0.0/8)");
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = len.unwrap_or(max);
            if len > max {
                return Err(bad());
            }
            ranges.push((addr, len));
        }
        Ok(TrustedProxies(ranges))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => len == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - len) == 0,
            (IpAddr::V6(n), IpAddr::V6(a)) => len == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - len) == 0,
            _ => false,
        })
    }

    /// The client: the connection's peer, or, when that is a trusted proxy,
    /// the nearest address in `X-Forwarded-For` that is not one.
    pub fn client(&self, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
        let mut client = peer?;
        if self.0.is_empty() || !self.contains(client) {
            return Some(client);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in forwarded.iter().rev() {
            // Whatever cannot be read stops the walk at the last hop we trust.
            let Ok(hop) = hop.trim().parse::<IpAddr>() else { break };
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        Some(client)
    }
}

/// Whom a record is about: an IPv4 address, an IPv6 /64, or, when the
/// address is not known (a request not served by [`crate::serve`]), everyone
/// such together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(std::net::Ipv4Addr),
    V6Prefix(u64),
    Unknown,
    /// Addresses not in a full table, together.
    Overflow,
}

impl Client {
    fn of(addr: Option<IpAddr>) -> Self {
        match addr.map(|a| a.to_canonical()) {
            Some(IpAddr::V4(v4)) => Client::V4(v4),
            Some(IpAddr::V6(v6)) => Client::V6Prefix((u128::from(v6) >> 64) as u64),
            None => Client::Unknown,
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(a) => write!(f, "{a}"),
            Client::V6Prefix(p) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*p) << 64))
            }
            Client::Unknown => f.write_str("(unknown address)"),
            Client::Overflow => f.write_str("(addresses past the table's bound, together)"),
        }
    }
}

#[derive(Debug)]
struct Record {
    failures: u32,
    /// No credential from this address is checked before this.
    gate: Instant,
    last_failure: Instant,
    /// Attempts admitted (or waiting for the gate) whose verdict is not in.
    in_flight: u32,
}

/// An attempt was refused without being checked: retry after this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }

    /// A 429 problem with `Retry-After`.
    pub fn into_response(self) -> Response {
        let secs = self.retry_after_secs();
        let mut r = crate::problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failed-authentications",
            "Too many failed authentications",
            &format!(
                "too many wrong credentials came from your address; the next attempt is checked in {secs} s \
                 (each further failure doubles the wait)"
            ),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    }
}

/// An admitted attempt: report its verdict. Dropped without one (the
/// request went away), it counts as neither.
#[must_use = "report whether the credentials were right"]
pub struct Attempt {
    throttle: AuthThrottle,
    client: Client,
    tracked: bool,
}

impl Attempt {
    pub fn failed(mut self) {
        let _ = self.throttle.record_failure(self.client, std::mem::take(&mut self.tracked));
    }

    pub fn succeeded(mut self) {
        self.tracked = false;
        lock(&self.throttle.records).remove(&self.client);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.tracked {
            self.throttle.release(self.client);
        }
    }
}

impl AuthThrottle {
    /// `listener` names it in logs and metrics (`admin`, `intake`).
    pub fn new(listener: &'static str, policy: ThrottlePolicy) -> Self {
        Self { listener, policy, proxies: Arc::default(), records: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Believe these proxies' `X-Forwarded-For`.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = Arc::new(proxies);
        self
    }

    /// The address a request came from: the peer [`crate::serve`] recorded,
    /// or the client a trusted proxy forwarded for.
    pub fn client_of(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        self.proxies.client(peer, req.headers())
    }

    /// Lets an attempt from `addr` be checked, now or after a short wait, or
    /// refuses it.
    pub async fn admit(&self, addr: Option<IpAddr>) -> Result<Attempt, Refused> {
        let mut client = Client::of(addr);
        loop {
            let wait_until = {
                let mut records = lock(&self.records);
                let now = Instant::now();
                client = self.resolve(&records, client);
                let Some(r) = records.get_mut(&client) else {
                    return Ok(Attempt { throttle: self.clone(), client, tracked: false });
                };
                if now >= r.gate && r.failures + r.in_flight < self.policy.free_failures.max(1) {
                    // Still within the free failures, counting those whose verdict is pending.
                    r.in_flight += 1;
                    return Ok(Attempt { throttle: self.clone(), client, tracked: true });
                }
                if r.in_flight > 0 {
                    // Another attempt from there is being checked or waits for the gate.
                    let retry_after = r.gate.saturating_duration_since(now).max(Duration::from_secs(1));
                    return Err(self.refused(client, retry_after));
                }
                if now >= r.gate {
                    r.in_flight += 1;
                    return Ok(Attempt { throttle: self.clone(), client, tracked: true });
                }
                let wait = r.gate - now;
                if wait > self.policy.max_wait {
                    return Err(self.refused(client, wait));
                }
                r.in_flight += 1;
                r.gate
            };
            // Holds the place while waiting; gives it back if the request goes away.
            let mut holder = Attempt { throttle: self.clone(), client, tracked: true };
            tokio::time::sleep_until(wait_until).await;
            let mut records = lock(&self.records);
            match records.get_mut(&client) {
                // A success elsewhere cleared the record meanwhile: go through as anyone.
                None => {
                    holder.tracked = false;
                    return Ok(holder);
                }
                Some(r) if Instant::now() >= r.gate => {
                    drop(records);
                    return Ok(holder);
                }
                Some(_) => {
                    drop(records);
                    // Not expected (a failure needs an admitted attempt); start over.
                    drop(holder);
                }
            }
        }
    }

    fn refused(&self, client: Client, retry_after: Duration) -> Refused {
        metrics::counter!("lifecycle_auth_throttled_total", "listener" => self.listener).increment(1);
        tracing::debug!(listener = self.listener, %client, ?retry_after, "attempt refused: its address is throttled");
        Refused { retry_after }
    }

    fn release(&self, client: Client) {
        if let Some(r) = lock(&self.records).get_mut(&client) {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    /// Counts a failure from `client`; returns the record it went to and
    /// that record's gate before it.
    fn record_failure(&self, client: Client, tracked: bool) -> (Client, Instant) {
        metrics::counter!("lifecycle_auth_failures_total", "listener" => self.listener).increment(1);
        let now = Instant::now();
        let mut records = lock(&self.records);
        let client = if !records.contains_key(&client)
            && records.len() >= self.policy.max_tracked
            && !self.make_room(&mut records, now)
        {
            Client::Overflow
        } else {
            client
        };
        let r = records.entry(client).or_insert(Record { failures: 0, gate: now, last_failure: now, in_flight: 0 });
        let gate_before = r.gate;
        if tracked {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        let delay = self.policy.delay_after(r.failures);
        r.gate = r.gate.max(now + delay);
        let n = r.failures;
        drop(records);
        let warn_after = self.policy.warn_after.max(1);
        if n >= warn_after && (n == warn_after || (n % warn_after == 0 && (n / warn_after).is_power_of_two())) {
            tracing::warn!(
                listener = self.listener,
                %client,
                failures = n,
                next_check_in = ?delay,
                "repeated failed authentications from one address; its attempts are being slowed down"
            );
        }
        (client, gate_before)
    }

    /// Drops records forgotten by now; whether that made room. A record
    /// still remembered is never evicted: evicting the stalest would let
    /// anyone with many addresses wash a guesser's record out.
    fn make_room(&self, records: &mut HashMap<Client, Record>, now: Instant) -> bool {
        let forget = self.policy.forget_after;
        records.retain(|_, r| r.in_flight > 0 || now.saturating_duration_since(r.last_failure) < forget);
        records.len() < self.policy.max_tracked
    }

    /// Drops records with no failure for `forget_after`; run now and then.
    fn forget_old(&self) {
        let now = Instant::now();
        let forget = self.policy.forget_after;
        lock(&self.records).retain(|_, r| r.in_flight > 0 || now.saturating_duration_since(r.last_failure) < forget);
    }

    /// The record that judges `client`: its own, or, when it has none and
    /// the table is full, the shared overflow record.
    fn resolve(&self, records: &HashMap<Client, Record>, client: Client) -> Client {
        if !records.contains_key(&client)
            && records.len() >= self.policy.max_tracked
            && records.contains_key(&Client::Overflow)
        {
            Client::Overflow
        } else {
            client
        }
    }

    /// A wrong credential from `addr` was checked: counts it. `Err` when the
    /// address's gate was closed when it came (answer 429, not 401).
    pub fn wrong(&self, addr: Option<IpAddr>) -> Result<(), Refused> {
        let (client, gate_before) = self.record_failure(Client::of(addr), false);
        // After it: a record this failure made has its gate at that failure's time.
        let now = Instant::now();
        if now < gate_before {
            let gate = lock(&self.records).get(&client).map_or(gate_before, |r| r.gate);
            return Err(self.refused(client, gate.saturating_duration_since(now)));
        }
        Ok(())
    }

    /// Middleware for routes whose handlers check their own credentials and
    /// mark the answer with an [`AuthVerdict`]. Nothing waits before the
    /// handler: a valid credential is never delayed or refused. An answer
    /// marked [`AuthVerdict::Wrong`] is counted against the client's address,
    /// and replaced by 429 with `Retry-After` while that address's gate is
    /// closed. Unmarked answers (no credential, or the request never reached
    /// the check: a 400 from an extractor, 404, 405) are no verdict.
    ///
    /// ```text
    /// router.route_layer(axum::middleware::from_fn_with_state(throttle, AuthThrottle::guard_by_verdict))
    /// ```
    pub async fn guard_by_verdict(State(throttle): State<AuthThrottle>, req: Request, next: Next) -> Response {
        let client = throttle.client_of(&req);
        let response = next.run(req).await;
        match response.extensions().get::<AuthVerdict>() {
            Some(AuthVerdict::Wrong) => match throttle.wrong(client) {
                Ok(()) => response,
                Err(refused) => refused.into_response(),
            },
            Some(AuthVerdict::Valid) | None => response,
        }
    }

    /// Starts a task that drops stale records every few minutes, for as long
    /// as a clone of this throttle is alive.
    pub fn spawn_janitor(&self) {
        let weak = Arc::downgrade(&self.records);
        let (listener, policy) = (self.listener, self.policy);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(policy.forget_after.max(Duration::from_secs(60)) / 4);
            loop {
                tick.tick().await;
                let Some(records) = weak.upgrade() else { return };
                AuthThrottle { listener, policy, proxies: Arc::default(), records }.forget_old();
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
