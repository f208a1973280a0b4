//! Where a local fleet keeps its state, under one data directory (default `.fleet/`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LocalError, LocalErrorKind};

/// The default data directory, relative to where `fleetctl` runs.
pub const DEFAULT_DATA_DIR: &str = ".fleet";

/// The files of a local fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

/// What a data directory says about itself: the environments the timers visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Environment ids whose tenant bindings the control loops resolve.
    pub environments: Vec<String>,
    /// Where simulated time stood when the fleet last stopped: a restart continues from there
    /// (or from the wall clock, if later), so time never runs backwards over stored state.
    #[serde(default)]
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The emulator engine's SQLite file.
    pub fn emulator_db(&self) -> PathBuf {
        self.root.join(fleet_emulator::DATA_FILE_NAME)
    }

    /// The store's SQLite file.
    pub fn store_db(&self) -> PathBuf {
        self.root.join("store.sqlite3")
    }

    /// The store URL for [`Layout::store_db`].
    pub fn store_url(&self) -> String {
        format!("sqlite://{}", self.store_db().display())
    }

    /// The sandbox cloud's directory (`sandbox.json`).
    pub fn sandbox_dir(&self) -> PathBuf {
        self.root.join("sandbox")
    }

    /// Desired-state manifests (`<environment>/<service>.yaml`), what drift detection compares to.
    pub fn desired_dir(&self) -> PathBuf {
        self.root.join("desired")
    }

    /// The manifest file.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("fleet.json")
    }

    /// Whether a fleet has run here before.
    pub fn has_state(&self) -> bool {
        self.emulator_db().exists() || self.store_db().exists() || self.sandbox_dir().exists()
    }

    /// Fails with an error naming the directory unless it holds a fleet (for readers).
    pub fn require_existing(&self) -> Result<(), LocalError> {
        if !self.root.is_dir() {
            return Err(LocalError::new(
                LocalErrorKind::DataDir,
                format!(
                    "data directory {} does not exist (start a fleet with `fleetctl up --data-dir {}`)",
                    self.root.display(),
                    self.root.display()
                ),
            ));
        }
        if !self.has_state() {
            return Err(LocalError::new(
                LocalErrorKind::DataDir,
                format!("data directory {} holds no fleet", self.root.display()),
            ));
        }
        Ok(())
    }

    /// Creates the directory.
    pub fn create(&self) -> Result<(), LocalError> {
        std::fs::create_dir_all(&self.root).map_err(|e| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot create data directory {}", self.root.display()),
            )
            .with_source(e)
        })
    }

    /// Removes what a previous fleet left here (only the files this layout names).
    pub fn reset(&self) -> Result<(), LocalError> {
        let fail = |p: &Path, e: std::io::Error| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot remove {}", p.display()),
            )
            .with_source(e)
        };
        for file in [self.emulator_db(), self.store_db(), self.manifest_path()] {
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", file.display()));
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| fail(&p, e))?;
                }
            }
        }
        for dir in [self.sandbox_dir(), self.desired_dir()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| fail(&dir, e))?;
            }
        }
        Ok(())
    }

    /// Takes the data directory for one running fleet: two engines on one emulator file would
    /// each process deadlines on state the other owns. Held until the returned file is dropped.
    pub fn lock(&self) -> Result<std::fs::File, LocalError> {
        let path = self.root.join("fleet.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                LocalError::new(
                    LocalErrorKind::DataDir,
                    format!("cannot open {}", path.display()),
                )
                .with_source(e)
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(LocalError::new(
                LocalErrorKind::DataDir,
                format!(
                    "data directory {} is in use by another running fleet",
                    self.root.display()
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot lock {}", path.display()),
            )
            .with_source(e)),
        }
    }

    /// Reads the manifest; an absent file is an empty manifest.
    pub fn read_manifest(&self) -> Result<Manifest, LocalError> {
        let path = self.manifest_path();
        if !path.exists() {
            return Ok(Manifest::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot read {}", path.display()),
            )
            .with_source(e)
        })?;
        serde_json::from_str(&text).map_err(|e| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("{} is not a fleet manifest", path.display()),
            )
            .with_source(e)
        })
    }

    /// Writes the manifest.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), LocalError> {
        let path = self.manifest_path();
        let text = serde_json::to_string_pretty(manifest).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| {
            LocalError::new(
                LocalErrorKind::DataDir,
                format!("cannot write {}", path.display()),
            )
            .with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_fleet_on_the_same_directory_is_refused_while_the_first_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path());
        let held = layout.lock().expect("the first fleet takes the directory");
        let err = layout.lock().expect_err("the second is refused");
        assert_eq!(err.kind(), LocalErrorKind::DataDir);
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        drop(held);
        assert!(
            layout.lock().is_ok(),
            "free again once the first fleet stops"
        );
    }

    #[test]
    fn readers_name_a_missing_directory_and_reset_removes_only_fleet_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = Layout::new(dir.path().join("nope"));
        let err = missing.require_existing().expect_err("missing");
        assert!(err.to_string().contains("nope") && err.to_string().contains("does not exist"));
        let layout = Layout::new(dir.path());
        std::fs::write(layout.store_db(), b"x").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
        assert!(layout.has_state());
        layout.reset().expect("reset");
        assert!(!layout.has_state());
        assert!(
            dir.path().join("notes.txt").exists(),
            "unrelated files stay"
        );
    }
}
