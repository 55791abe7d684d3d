//! GitHub: the directory and plans, against the simulator in process.
