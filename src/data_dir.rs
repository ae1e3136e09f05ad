//! The lock on a data directory: one process at a time writes the embedded log and read models
//! in it (the embedded log's state cache and group commit rely on being the only writer).
//!
//! In: the directory. Out: a guard held while a service (or an offline `replay --swap`) runs.

use crate::StartError;
use std::path::Path;

/// Exclusive use of a data directory, held while a service (or an offline `replay --swap`)
/// runs, released when dropped. Readers (verify, history, export) do not need it.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, or fails at once when another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, StartError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
        let lock = data_dir.join("fulfillment.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| StartError::DataDir { path: data_dir.display().to_string(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StartError::DataDirInUse { path: data_dir.display().to_string(), lock: lock.display().to_string() })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                Err(StartError::DataDir { path: data_dir.display().to_string(), source })
            }
        }
    }
}
