//! The admin token when the operator gave none (`--admin-token`): its
//! value goes to a file only the server's user can read, never to a log
//! or the terminal, since logs are shipped, kept and shared, and a token in
//! them is a token leaked. The path is logged and printed instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Config;

/// Where the token in use is written, or `None` when the operator gave one
/// (then nothing is written). `port` is the port the server listens on:
/// it tells apart the default files of servers on one host.
pub fn file(config: &Config, port: u16) -> Option<PathBuf> {
    if config.admin_token.as_deref().is_some_and(|t| !t.is_empty()) {
        return None;
    }
    Some(
        config
            .admin_token_file
            .clone()
            .unwrap_or_else(|| default_file(port)),
    )
}

/// `ticket-server-<port>.admin-token` in the temporary directory (`$TMPDIR`,
/// else `/tmp`).
pub fn default_file(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("ticket-server-{port}.admin-token"))
}

/// Writes `token` (no newline) to `path` with mode 0600. It goes into a new
/// file beside `path` first, then is renamed over it: the token never sits
/// in a file another user opened or made before (in a sticky `/tmp`, a
/// rename over another user's file fails instead).
pub fn write(path: &Path, token: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    let scratch = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&scratch)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&scratch, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&scratch);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["ticket-server"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn a_file_only_when_no_token_was_given() {
        assert_eq!(file(&config(&["--admin-token", "T"]), 8080), None);
        assert_eq!(
            file(&config(&["--admin-token", ""]), 8080),
            Some(default_file(8080)),
            "empty counts as not given"
        );
        assert_eq!(
            file(&config(&["--admin-token-file", "/run/t"]), 1),
            Some(PathBuf::from("/run/t"))
        );
        assert!(default_file(9000).ends_with("ticket-server-9000.admin-token"));
    }

    #[cfg(unix)]
    #[test]
    fn written_whole_for_the_owner_alone_and_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        // A world-readable file already there is replaced, not reused.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, "abc").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no scratch left"
        );
        assert!(write(&dir.join("missing/t"), "abc").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
