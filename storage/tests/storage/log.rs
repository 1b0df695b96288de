//! The write-ahead log: a killed store comes back from it, a torn tail is dropped, a damaged older segment is refused.
//!
//! A child process (this binary, role "write") writes records and key/value
//! state, prints `@@ written` once every write is acknowledged, and waits to
//! be killed: its writes are then in the log only, never checkpointed into
//! sled's files, so reopening must replay them.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use runbook_storage::{EventLog, KvState, StorageError};

use crate::support::{MESSAGE_MARKER, child_role, open, spawn_child};

const RECORDS: u64 = 20;

fn record(seq: u64) -> Vec<u8> {
    format!("record {seq}").into_bytes()
}

fn write_and_wait(dir: &Path) {
    let store = open(dir);
    let stream = store.allocate_stream_id().unwrap();
    assert_eq!(stream, 1);
    for seq in 1..=RECORDS {
        store.append(stream, seq, &[&record(seq)]).unwrap();
    }
    store.kv_put("state", b"kept", b"value").unwrap();
    store.kv_put("state", b"dropped", b"value").unwrap();
    store.kv_delete("state", b"dropped").unwrap();
    assert!(store.kv_compare_and_swap("state", b"swapped", None, Some(b"new")).unwrap().is_ok());
    println!("{MESSAGE_MARKER}written");
    // Hold the store until the parent kills us or closes our stdin.
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// A store written by a child that was then killed; its log segments.
fn killed_store(test_name: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = crate::support::temp_dir();
    let mut writer = spawn_child(test_name, "write", dir.path());
    writer.wait_for_message("written");
    writer.child.kill().unwrap();
    writer.child.wait().unwrap();
    let segments = segments(dir.path());
    let logged: u64 = segments.iter().map(|path| fs::metadata(path).unwrap().len()).sum();
    assert!(logged > 0, "the killed store's writes are in its log: {segments:?}");
    (dir, segments)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> =
        fs::read_dir(dir.join("wal")).unwrap().map(|entry| entry.unwrap().path()).collect();
    segments.sort();
    segments
}

#[track_caller]
fn assert_everything_written_is_there(dir: &Path) {
    let store = open(dir);
    let records: Vec<_> = store.read(1, 1).collect::<Result<_, _>>().unwrap();
    assert_eq!(records, (1..=RECORDS).map(|seq| (seq, record(seq))).collect::<Vec<_>>());
    assert_eq!(store.kv_get("state", b"kept").unwrap().as_deref(), Some(&b"value"[..]));
    assert_eq!(store.kv_get("state", b"dropped").unwrap(), None);
    assert_eq!(store.kv_get("state", b"swapped").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(store.allocate_stream_id().unwrap(), 2, "the id handed out before the kill stays taken");
    // Replayed and checkpointed: one fresh segment remains, empty.
    let after_open = segments(dir);
    assert_eq!(after_open.len(), 1, "{after_open:?}");
    drop(store);
    assert_eq!(segments(dir), Vec::<PathBuf>::new(), "a closed store keeps no log");
}

#[test]
fn a_killed_store_comes_back_from_its_log_and_a_closed_one_keeps_none() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "write");
        return write_and_wait(&dir);
    }
    let (dir, _) = killed_store("log::a_killed_store_comes_back_from_its_log_and_a_closed_one_keeps_none");
    assert_everything_written_is_there(dir.path());
    // And once more from the checkpointed files alone.
    let store = open(dir.path());
    assert_eq!(store.next_seq(1).unwrap(), RECORDS + 1);
}

#[test]
fn a_write_torn_at_the_end_of_the_log_is_dropped_and_the_rest_replayed() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "write");
        return write_and_wait(&dir);
    }
    let (dir, segments) = killed_store("log::a_write_torn_at_the_end_of_the_log_is_dropped_and_the_rest_replayed");
    // The start of a frame whose payload never reached the disk, written
    // where the frames end and the zeros written ahead of them begin.
    let last = segments.last().unwrap();
    let bytes = fs::read(last).unwrap();
    // Frames follow each other, each `[length: u32 LE][crc: u32][payload]`;
    // zeros follow the last.
    let mut end = 0;
    while let Some(len) = bytes.get(end..end + 4).map(|len| u32::from_le_bytes(len.try_into().unwrap()) as usize) {
        if len == 0 {
            break;
        }
        end += 8 + len;
    }
    let file = fs::OpenOptions::new().write(true).open(last).unwrap();
    file.write_all_at(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 7], end as u64).unwrap();
    assert_everything_written_is_there(dir.path());
}

#[test]
fn damage_with_acknowledged_writes_after_it_is_refused_and_the_log_kept() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "write");
        return write_and_wait(&dir);
    }
    let (dir, segments) = killed_store("log::damage_with_acknowledged_writes_after_it_is_refused_and_the_log_kept");
    let damaged = segments.last().unwrap().clone();
    let mut bytes = fs::read(&damaged).unwrap();
    // Inside the first frame's payload (its header is 8 bytes): every batch
    // after it, each acknowledged, would be lost to replay.
    bytes[12] ^= 0x40;
    fs::write(&damaged, &bytes).unwrap();
    let assert_refused = |why: &str| match runbook_storage::SledStore::open(dir.path()) {
        Err(error @ StorageError::Backend { .. }) => {
            let message = error.to_string();
            assert!(message.starts_with(&format!("replaying log segment {}: ", damaged.display())), "{message}");
            assert!(message.contains(&format!("is damaged, {why}")), "{message}");
        }
        other => panic!("expected the damaged segment to be refused, got {other:?}"),
    };
    // In the last segment: later batches follow the damage.
    assert_refused("and a later batch follows it");
    // In a segment that a newer one follows.
    let newer = damaged.with_file_name(format!("{:020}.log", 999));
    fs::write(&newer, b"").unwrap();
    assert_refused("in a segment completed before a newer one began");
    assert_eq!(fs::read(&damaged).unwrap(), bytes, "the damaged segment is kept as it was");
    assert!(newer.exists());
}

#[test]
fn a_checkpoint_empties_the_log_and_keeps_every_write() {
    let dir = crate::support::temp_dir();
    let store = open(dir.path());
    for seq in 1..=RECORDS {
        store.append(7, seq, &[&record(seq)]).unwrap();
    }
    store.kv_put_unsynced("state", b"unsynced", b"value").unwrap();
    let before: u64 = segments(dir.path()).iter().map(|path| fs::metadata(path).unwrap().len()).sum();
    assert!(before > 0);
    store.checkpoint().unwrap();
    let after = segments(dir.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(fs::metadata(&after[0]).unwrap().len(), 0);
    assert_eq!(store.read(7, 1).count() as u64, RECORDS);
    assert_eq!(store.kv_get("state", b"unsynced").unwrap().as_deref(), Some(&b"value"[..]));
    // Writes go on in the new segment.
    store.append(7, RECORDS + 1, &[b"more"]).unwrap();
    assert!(fs::metadata(&after[0]).unwrap().len() > 0);
}
