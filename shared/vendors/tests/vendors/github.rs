//! GitHub: the workflows against the simulator, in process.
