//! Temporary directories, removed when the test passes.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A new, empty directory under the system's temporary directory. Removed
/// when dropped, except while a test fails: then it is kept for a look,
/// and its path printed.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// `<tmp>/<prefix>-<pid>-<random>`, created.
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (the test failed)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;

    #[test]
    fn created_empty_and_removed_on_drop() {
        let dir = TempDir::new("testkit");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::write(dir.join("f"), "x").unwrap();
        let path = dir.to_path_buf();
        assert_ne!(path, TempDir::new("testkit").to_path_buf(), "unique");
        drop(dir);
        assert!(!path.exists());
    }
}
