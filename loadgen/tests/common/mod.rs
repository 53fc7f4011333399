//! Helpers shared by loadgen's test targets that start real instances.

use std::path::PathBuf;
use std::process::Command;

/// The ticket-server binary a fleet starts (cargo puts it next to
/// loadgen); built first when a lone `cargo test -p loadgen` has not.
pub fn server_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let bin = loadgen.with_file_name("ticket-server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ticket-server", "--bin", "ticket-server"])
            .status()
            .unwrap();
        assert!(status.success(), "building ticket-server failed");
    }
    bin
}
