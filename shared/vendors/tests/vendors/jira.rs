//! jira: the workflows against the simulator, in process.

use crate::common::*;
