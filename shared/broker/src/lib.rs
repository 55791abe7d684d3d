//! RabbitMQ for lifecycle: the topology both binaries declare, the messages
//! that travel, and a publisher that waits for the broker's confirms.
//!
//! The broker only carries pointers (`run id` + `dispatch sequence`); the
//! database holds the truth. Losing a message therefore delays a run but never
//! loses it (the worker's sweeper republishes overdue runs), and a duplicate
//! message is recognised by its stale dispatch sequence and dropped.

mod message;
mod publisher;
mod topology;

pub use lapin;
pub use message::{DeadLetter, Dispatch};
pub use publisher::Publisher;
pub use topology::Topology;

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
}

impl From<lapin::Error> for BrokerError {
    fn from(e: lapin::Error) -> Self {
        BrokerError::Channel(e.to_string())
    }
}

/// Opens a connection named after the process, so it is recognisable in the
/// management UI.
pub async fn connect(url: &str, name: &str) -> Result<lapin::Connection, BrokerError> {
    let props = lapin::ConnectionProperties::default().with_connection_name(name.into());
    lapin::Connection::connect(url, props).await.map_err(|e| BrokerError::Connect(e.to_string()))
}
