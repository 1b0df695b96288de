//! Opening a store: the directory it creates, and the errors that name what failed.

use std::os::unix::fs::PermissionsExt;

use runbook_storage::{EventLog, SledStore, StorageError};

use crate::support::{open, temp_dir};

#[test]
fn a_missing_directory_is_created_private() {
    let parent = temp_dir();
    let dir = parent.path().join("data").join("runbook");
    let store = open(&dir);
    assert_eq!(store.path(), dir);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700 & !umask(), "mode {mode:o}");
    assert!(dir.join("db").is_file());
    store.append(1, 1, &[b"x"]).unwrap();
    assert!(store.size_on_disk().unwrap() > 0);
}

/// The process umask, which applies to the directory's mode as to any file's.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn a_path_that_is_a_file_fails_naming_it() {
    let parent = temp_dir();
    let file = parent.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    match SledStore::open(&file) {
        Err(error @ StorageError::Io { .. }) => {
            assert_eq!(error.to_string(), format!("opening store {}", file.display()));
        }
        other => panic!("expected an IO error, got {other:?}"),
    }
}
