//! Shared test helpers: an in-memory log writer.

#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// A `MakeWriter` appending to this buffer.
    pub fn writer(&self) -> impl Fn() -> LogBuffer + Send + Sync + 'static {
        let buffer = self.clone();
        move || buffer.clone()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).expect("log output is UTF-8")
    }

    /// Each line parsed as a JSON object.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
