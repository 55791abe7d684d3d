//! Stopping and starting the real RabbitMQ, for the tests that prove nothing
//! is lost across an outage. They run one at a time, after the rest of the
//! suite (`scripts/test` runs the `disruptive` test binary on its own).

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the broker application last started. Deleting quorum queues while
/// RabbitMQ is still starting their dead-letter workers makes those workers
/// crash-loop, which in RabbitMQ 3.10 trips `rabbit_fifo_dlx_sup`'s restart
/// intensity and leaves every at-least-once dead-lettering queue broken until
/// the next restart (rabbitmq-server#16652). Test clean-up waits this out.
static LAST_START: Mutex<Option<Instant>> = Mutex::new(None);

/// How long after a start the broker is left alone before queues are deleted.
const SETTLE: Duration = Duration::from_secs(5);

/// Blocks until the broker has been up for [`SETTLE`] since its last start by
/// this process (returns at once when it never restarted it).
pub fn wait_until_settled() {
    let started = *LAST_START.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(remaining) = started.and_then(|at| SETTLE.checked_sub(at.elapsed())) {
        std::thread::sleep(remaining);
    }
}

fn start_app() {
    rabbitmqctl(&["start_app"]);
    *LAST_START.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
}

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
        start_app();
        wait_until_up().await;
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.ended {
            start_app();
        }
    }
}

/// Restarts the broker application (stop, then start).
pub async fn restart() {
    rabbitmqctl(&["stop_app"]);
    start_app();
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
