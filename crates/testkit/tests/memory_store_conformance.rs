//! The in-memory store passes the same conformance suite as the SQLite and PostgreSQL backends.

use std::sync::Arc;

use fleet_store::conformance::Harness;
use fleet_testkit::MemoryStore;

async fn harness() -> Option<Harness> {
    Some(Harness::new(Arc::new(MemoryStore::new())))
}

fleet_store::store_conformance_tests!(harness);
