//! Damaged records, made through sled directly, are reported with their seq and never skipped.

use std::path::Path;
use std::time::Duration;

use runbook_storage::{EventLog, Seq, StorageError, StreamId};

use crate::support::{open, temp_dir};

fn key(stream: StreamId, seq: Seq) -> Vec<u8> {
    [stream.to_be_bytes(), seq.to_be_bytes()].concat()
}

/// Writes streams 1 and 2 with five records each, then closes the store.
fn write_two_streams(dir: &Path) {
    let store = open(dir);
    for stream in [1, 2] {
        store.append(stream, 1, &[b"zero", b"one", b"two", b"three", b"four"]).unwrap();
    }
}

/// Changes the stored value of record `seq` of `stream` with sled itself,
/// as a disk or a bug might, while the store is closed.
fn damage(dir: &Path, stream: StreamId, seq: Seq, change: impl FnOnce(&mut Vec<u8>)) {
    let db = sled::open(dir).unwrap();
    let events = db.open_tree("events").unwrap();
    match events.get(key(stream, seq)).unwrap() {
        Some(value) => {
            let mut value = value.to_vec();
            change(&mut value);
            events.insert(key(stream, seq), value).unwrap();
        }
        None => panic!("no record {seq} in stream {stream}"),
    }
    drop(events);
    close(db, dir);
}

/// Closes a database opened with sled itself, and waits until sled lets
/// the directory go, so that the store can be opened at once.
fn close(db: sled::Db, dir: &Path) {
    db.flush().unwrap();
    drop(db);
    assert!(runbook_storage::wait_until_released(dir, Duration::from_secs(10)).unwrap());
}

fn remove(dir: &Path, stream: StreamId, seq: Seq) {
    let db = sled::open(dir).unwrap();
    db.open_tree("events").unwrap().remove(key(stream, seq)).unwrap();
    close(db, dir);
}

/// Reads stream 1 and asserts records 1 and 2 come back, then a `Corrupt`
/// error for seq 3 whose reason contains `reason`, then nothing; stream 2
/// reads whole.
#[track_caller]
fn assert_stream_1_corrupt_at_3(dir: &Path, reason: &str) {
    let store = open(dir);
    let items: Vec<_> = store.read(1, 1).collect();
    assert_eq!(items.len(), 3, "expected two records then the error, got {items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &(1, b"zero".to_vec()));
    assert_eq!(items[1].as_ref().unwrap(), &(2, b"one".to_vec()));
    match &items[2] {
        Err(error @ StorageError::Corrupt { stream: 1, seq: 3, reason: why }) => {
            assert!(why.contains(reason), "{error}");
            assert!(error.to_string().starts_with("record 3 of stream 1 is corrupt: "), "{error}");
        }
        other => panic!("expected record 3 of stream 1 to be corrupt, got {other:?}"),
    }
    // Reading from the bad record fails at once too.
    assert!(matches!(store.read(1, 3).next(), Some(Err(StorageError::Corrupt { seq: 3, .. }))));
    let other: Vec<_> = store.read(2, 1).collect::<Result<_, _>>().unwrap();
    assert_eq!(other.len(), 5);
}

#[test]
fn a_flipped_payload_byte_is_reported_with_its_seq() {
    let dir = temp_dir();
    write_two_streams(dir.path());
    // Byte 4 is the first payload byte, after the 4-byte checksum.
    damage(dir.path(), 1, 3, |value| value[4] ^= 0x20);
    assert_stream_1_corrupt_at_3(dir.path(), "checksum mismatch");
}

#[test]
fn a_flipped_checksum_byte_is_reported() {
    let dir = temp_dir();
    write_two_streams(dir.path());
    damage(dir.path(), 1, 3, |value| value[0] ^= 0x01);
    assert_stream_1_corrupt_at_3(dir.path(), "checksum mismatch");
}

#[test]
fn a_value_too_short_for_a_checksum_is_reported() {
    let dir = temp_dir();
    write_two_streams(dir.path());
    damage(dir.path(), 1, 3, |value| value.truncate(3));
    assert_stream_1_corrupt_at_3(dir.path(), "too short");
}

#[test]
fn a_missing_record_is_reported_not_skipped() {
    let dir = temp_dir();
    write_two_streams(dir.path());
    remove(dir.path(), 1, 3);
    assert_stream_1_corrupt_at_3(dir.path(), "missing");
}
