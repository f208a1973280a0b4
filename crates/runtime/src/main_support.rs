//! Helpers that keep a worker's `main.rs` to a few lines.
