//! What the front ends (the console, the admin API, the ctl) read, and the
//! filters they read it with: the only way they reach the store, so that a
//! query, or what a row means, is written once here rather than in each of
//! them. Store row and filter types are re-exported where ops adds nothing.

pub mod audit;
pub mod deliveries;
pub mod findings;
pub mod passes;
pub mod runs;
