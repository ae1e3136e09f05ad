//! The directory of partners, publishers, offers and credentials a service answers for: from a
//! TOML file, or the public demo catalog shipped in the repository when no file is named and
//! none is at the default path.
//!
//! In: a path, and whether the operator named it. Out: the [`Directory`] and where it came
//! from, so the binary can warn loudly when demo credentials are live.

use crate::StartError;
use fulfillment_ingress::Directory;
use std::path::{Path, PathBuf};

/// The demo catalog and credentials shipped in the repository (`config/demo.toml`).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Where the directory came from, so the operator can be told when demo credentials are live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// A configuration file.
    File(PathBuf),
    /// The built-in demo catalog (no file at the default path).
    Demo,
}

/// Loads the directory from `path`. When `path` is the default and no file exists, the demo
/// catalog is used; an explicitly named file that does not exist is an error.
pub fn load_directory(path: &Path, explicitly_named: bool) -> Result<(Directory, DirectorySource), StartError> {
    if !path.exists() && !explicitly_named {
        let directory = Directory::from_toml(DEMO_CONFIG)
            .map_err(|source| StartError::Config { path: "config/demo.toml".into(), source })?;
        return Ok((directory, DirectorySource::Demo));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| StartError::ConfigRead { path: path.display().to_string(), source })?;
    let directory = Directory::from_toml(&text)
        .map_err(|source| StartError::Config { path: path.display().to_string(), source })?;
    Ok((directory, DirectorySource::File(path.to_owned())))
}
