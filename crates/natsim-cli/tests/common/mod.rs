//! What the CLI tests share: the binary, the repository, scratch files
//! and a mixed suite of passing, failing and broken files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn natsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_natsim"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natsim-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A folder of its own under the scratch directory, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("natsim-cli-test-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub const TYPO: &str = "title = \"t\"\n[[segment]]\nname = \"lan\"\nlatencyy = \"1ms\"\n";

/// A suite with a passing file, a failing variant and a file that does
/// not load, in a subfolder (names must be relative to the folder given).
pub fn mixed_suite(name: &str) -> PathBuf {
    let dir = scratch_dir(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let src = std::fs::read_to_string(repo().join("scenarios/hairpin.toml")).unwrap();
    std::fs::write(dir.join("sub/hairpin.toml"), &src).unwrap();
    let broken = src.replacen("expect = \"status 200\"", "expect = \"status 404\"", 1);
    assert_ne!(src, broken);
    std::fs::write(dir.join("hairpin-404.toml"), broken).unwrap();
    std::fs::write(dir.join("typo.toml"), TYPO).unwrap();
    dir
}

pub fn run_ok(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = natsim().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
