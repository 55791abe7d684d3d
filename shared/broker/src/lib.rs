//! RabbitMQ for lifecycle: the topology both binaries declare, the messages
//! that travel, and a publisher that waits for the broker's confirms.
//!
//! Each vendor has its own lane (a work queue with a single active consumer),
//! so vendors move at their own pace: see [`topology`].
//!
//! The broker only carries pointers (`run id` + `dispatch sequence`); the
//! database holds the truth. Losing a message therefore delays a run but never
//! loses it (the worker's sweeper republishes overdue runs), and a duplicate
//! message is recognised by its stale dispatch sequence and dropped.

mod addresses;
mod message;
mod publisher;
pub mod topology;

pub use addresses::{Endpoints, ATTEMPT_TIMEOUT};
pub use lapin;
pub use message::{DeadLetter, Dispatch};
pub use publisher::Publisher;
pub use topology::{delay_key, now_key, Topology};

/// The message header that carries a run's W3C trace context (issue 18): the
/// trace travels with the run from the intake to the worker.
pub const TRACEPARENT: &str = "traceparent";

/// `props` with a `traceparent` header, when there is one to carry.
pub(crate) fn with_traceparent(props: lapin::BasicProperties, traceparent: Option<&str>) -> lapin::BasicProperties {
    use lapin::types::AMQPValue;
    match traceparent {
        None => props,
        Some(tp) => {
            let mut headers = props.headers().clone().unwrap_or_default();
            headers.insert(TRACEPARENT.into(), AMQPValue::LongString(tp.into()));
            props.with_headers(headers)
        }
    }
}

/// The `traceparent` header of a delivered message, if it has one that is text.
pub fn traceparent(props: &lapin::BasicProperties) -> Option<String> {
    use lapin::types::AMQPValue;
    match props.headers().as_ref()?.inner().get(TRACEPARENT)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach RabbitMQ: {0}")]
    Connect(String),
    #[error("RabbitMQ refused: {0}")]
    Channel(String),
    #[error("RabbitMQ did not confirm the message (nack)")]
    Nacked,
    #[error("RabbitMQ could not route the message to {0} (is the topology declared?)")]
    Unroutable(String),
    #[error("RabbitMQ did not confirm within {0:?}")]
    ConfirmTimeout(std::time::Duration),
    #[error("RabbitMQ did not finish {0} within {1:?}")]
    SetupTimeout(&'static str, std::time::Duration),
}

impl From<lapin::Error> for BrokerError {
    fn from(e: lapin::Error) -> Self {
        BrokerError::Channel(e.to_string())
    }
}

/// The AMQP heartbeat asked for when the URL names none. RabbitMQ closes a
/// connection after two missed heartbeats, and only then hands a lane (a
/// single-active-consumer queue) and its unacknowledged messages to a standby
/// worker: with RabbitMQ's default of 60 s a frozen worker would hold its
/// lanes for minutes.
pub const HEARTBEAT_SECS: u16 = 5;

/// How long connecting and setting up (channels, declares, consumers) may
/// take. lapin waits for the broker's answers without a deadline, and a
/// broker that has just started can accept a connection and then not answer
/// while its quorum queues elect leaders: without a bound, a publisher (which
/// holds its lock while it reconnects) or a consumer would wait there for
/// good, and runs with it. Past the bound it is a failed attempt, retried.
pub const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs a connection's setup under [`SETUP_TIMEOUT`].
pub async fn within_setup_timeout<T>(
    what: &'static str,
    setup: impl std::future::Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(SETUP_TIMEOUT, setup).await.unwrap_or(Err(BrokerError::SetupTimeout(what, SETUP_TIMEOUT)))
}

/// Opens a connection named after the process, so it is recognisable in the
/// management UI, to the first of `broker`'s addresses that accepts one (a
/// URL, or [`Endpoints`] from `broker.url` and `broker.addresses`).
pub async fn connect(broker: impl Into<Endpoints>, name: &str) -> Result<lapin::Connection, BrokerError> {
    broker.into().connect(name).await
}
