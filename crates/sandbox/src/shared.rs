//! Sharing one data directory between processes: every access takes an exclusive lock on
//! `sandbox.lock` and reloads the data file when another process changed it since this one last
//! read or wrote it. Seven worker binaries started on the same `data_dir` thus see one world.

use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fleet_cloud::CloudError;
use parking_lot::{Mutex, MutexGuard};

use crate::state::{self, State};

/// What identifies one version of the data file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok()?,
    })
}

/// The world, in memory and (optionally) on disk.
pub(crate) struct SharedState {
    state: Mutex<State>,
    /// The data file version the in-memory state matches.
    stamp: Mutex<Option<Stamp>>,
    data_file: Option<PathBuf>,
}

/// Exclusive access to the world: the in-process mutex plus, with a data directory, the
/// cross-process file lock (released on drop).
pub(crate) struct StateGuard<'a> {
    state: MutexGuard<'a, State>,
    _file_lock: Option<File>,
}

impl Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl SharedState {
    /// Opens the world in `data_dir` (created if missing), or an in-memory one.
    pub fn open(data_dir: Option<&Path>) -> Result<SharedState, CloudError> {
        let Some(dir) = data_dir else {
            return Ok(SharedState {
                state: Mutex::new(state::new_state()),
                stamp: Mutex::new(None),
                data_file: None,
            });
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            CloudError::permanent(format!(
                "{}: cannot create the sandbox data directory",
                dir.display()
            ))
            .with_source(e)
        })?;
        let shared = SharedState {
            state: Mutex::new(state::new_state()),
            stamp: Mutex::new(None),
            data_file: Some(dir.join("sandbox.json")),
        };
        // Loads (and validates) the file now, so a corrupt one fails the start, not a call.
        drop(shared.lock()?);
        Ok(shared)
    }

    /// Locks the world, first catching up with changes other processes wrote.
    pub fn lock(&self) -> Result<StateGuard<'_>, CloudError> {
        let mut guard = self.state.lock();
        let Some(path) = &self.data_file else {
            return Ok(StateGuard {
                state: guard,
                _file_lock: None,
            });
        };
        let lock_path = path.with_extension("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                CloudError::transient(format!("{}: cannot open", lock_path.display()))
                    .with_source(e)
            })?;
        file.lock().map_err(|e| {
            CloudError::transient(format!("{}: cannot lock", lock_path.display())).with_source(e)
        })?;
        let current = stamp_of(path);
        let mut seen = self.stamp.lock();
        if current != *seen {
            *guard = match current {
                Some(_) => state::load(path)?,
                None => state::new_state(),
            };
            *seen = current;
        }
        Ok(StateGuard {
            state: guard,
            _file_lock: Some(file),
        })
    }

    /// Writes the state through to the data file (a no-op in memory).
    pub fn persist(&self, state: &State) -> Result<(), CloudError> {
        let Some(path) = &self.data_file else {
            return Ok(());
        };
        state::save(path, state)?;
        *self.stamp.lock() = stamp_of(path);
        Ok(())
    }
}
