//! Stopping and starting the real RabbitMQ, for the tests that prove nothing
//! is lost across an outage. They run one at a time, after the rest of the
//! suite (`scripts/test` runs the `disruptive` test binary on its own).

use std::process::Command;
use std::time::Duration;

/// Stops the broker application; starts it again when dropped (even if the test panics).
pub struct BrokerOutage {
    ended: bool,
}

impl BrokerOutage {
    pub fn begin() -> BrokerOutage {
        rabbitmqctl(&["stop_app"]);
        BrokerOutage { ended: false }
    }

    /// Starts the broker again and waits until it accepts connections.
    pub async fn end(mut self) {
        self.ended = true;
        rabbitmqctl(&["start_app"]);
        wait_until_up().await;
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.ended {
            rabbitmqctl(&["start_app"]);
        }
    }
}

/// Restarts the broker application (stop, then start).
pub async fn restart() {
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    wait_until_up().await;
}

fn rabbitmqctl(args: &[&str]) {
    let out =
        Command::new("rabbitmqctl").args(args).output().unwrap_or_else(|e| panic!("running rabbitmqctl {args:?}: {e}"));
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

async fn wait_until_up() {
    crate::eventually(Duration::from_secs(60), "RabbitMQ to accept connections again", || async {
        lifecycle_broker::connect(&crate::amqp_url(), "e2e-wait").await.ok().map(|_| ())
    })
    .await;
}
