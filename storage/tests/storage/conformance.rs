//! The `EventLog` conformance suite: what every backend must do, written against the trait alone.
//!
//! A new backend gets a `#[test]` calling [`conformance`] on a fresh log and
//! [`conformance_across_reopen`] with a function that reopens it. The suite
//! allocates its own streams, so the log need not be empty.

use runbook_storage::{EventLog, Seq, StorageError, StreamId};

use crate::support::{open, temp_dir};

/// Every property that one open log must have.
pub fn conformance(log: &dyn EventLog) {
    appends_are_read_back_in_order_from_seq_1(log);
    a_wrong_expected_seq_conflicts_and_writes_nothing(log);
    an_empty_append_only_checks_the_seq(log);
    reads_start_anywhere(log);
    streams_do_not_mix(log);
    payloads_of_any_size_round_trip(log);
    streams_lists_streams_with_records(log);
    delete_stream_removes_it_all(log);
    allocated_ids_increase(log);
}

/// Properties that need the log closed and opened again: `open` must drop
/// nothing itself, the caller drops the previous log before calling it.
pub fn conformance_across_reopen(open: &mut dyn FnMut() -> Box<dyn EventLog>) {
    let log = open();
    let stream = log.allocate_stream_id().unwrap();
    let later = log.allocate_stream_id().unwrap();
    log.append(stream, 1, &[b"one", b"two"]).unwrap();
    drop(log);

    let log = open();
    assert_eq!(read_all(&*log, stream), [(1, b"one".to_vec()), (2, b"two".to_vec())]);
    assert_eq!(log.next_seq(stream).unwrap(), 3);
    let next = log.allocate_stream_id().unwrap();
    assert!(next > later, "after reopening, id {next} is not above the earlier {later}");
    log.append(stream, 3, &[b"three"]).unwrap();
    log.delete_stream(later).unwrap();
    drop(log);

    let log = open();
    assert_eq!(log.next_seq(stream).unwrap(), 4);
    assert!(log.allocate_stream_id().unwrap() > next);
}

fn read_all(log: &dyn EventLog, stream: StreamId) -> Vec<(Seq, Vec<u8>)> {
    read_from(log, stream, 1)
}

fn read_from(log: &dyn EventLog, stream: StreamId, from: Seq) -> Vec<(Seq, Vec<u8>)> {
    log.read(stream, from).collect::<Result<_, _>>().unwrap()
}

#[track_caller]
fn assert_conflict(result: Result<Seq, StorageError>, stream: StreamId, expected: Seq, actual_next: Seq) {
    match result {
        Err(StorageError::Conflict { stream: s, expected: e, actual_next: a }) => {
            assert_eq!((s, e, a), (stream, expected, actual_next));
        }
        other => panic!("expected a conflict at seq {expected} of stream {stream}, got {other:?}"),
    }
}

fn appends_are_read_back_in_order_from_seq_1(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    assert_eq!(log.next_seq(stream).unwrap(), 1);
    assert!(read_all(log, stream).is_empty());
    assert_eq!(log.append(stream, 1, &[b"a"]).unwrap(), 2);
    assert_eq!(log.append(stream, 2, &[b"b", b"c"]).unwrap(), 4);
    assert_eq!(log.next_seq(stream).unwrap(), 4);
    assert_eq!(read_all(log, stream), [(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]);
}

fn a_wrong_expected_seq_conflicts_and_writes_nothing(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    log.append(stream, 1, &[b"a", b"b"]).unwrap();
    // Too low: another writer got there first.
    assert_conflict(log.append(stream, 2, &[b"x", b"y"]), stream, 2, 3);
    assert_conflict(log.append(stream, 1, &[b"x"]), stream, 1, 3);
    assert_conflict(log.append(stream, 0, &[b"x"]), stream, 0, 3);
    // Too high: would leave a gap.
    assert_conflict(log.append(stream, 4, &[b"x"]), stream, 4, 3);
    assert_conflict(log.append(stream, Seq::MAX, &[b"x"]), stream, Seq::MAX, 3);
    // A fresh stream only takes seq 1.
    let fresh = log.allocate_stream_id().unwrap();
    assert_conflict(log.append(fresh, 2, &[b"x", b"y", b"z"]), fresh, 2, 1);
    // All or nothing: no record of a refused multi-record append is there.
    assert_eq!(read_all(log, stream), [(1, b"a".to_vec()), (2, b"b".to_vec())]);
    assert!(read_all(log, fresh).is_empty());
    assert_eq!(log.next_seq(fresh).unwrap(), 1);
}

fn an_empty_append_only_checks_the_seq(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    assert_eq!(log.append(stream, 1, &[]).unwrap(), 1);
    assert_conflict(log.append(stream, 2, &[]), stream, 2, 1);
    log.append(stream, 1, &[b"a"]).unwrap();
    assert_eq!(log.append(stream, 2, &[]).unwrap(), 2);
    assert_eq!(log.next_seq(stream).unwrap(), 2);
}

fn reads_start_anywhere(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    let records: Vec<Vec<u8>> = (1..=10).map(|n| format!("record {n}").into_bytes()).collect();
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    log.append(stream, 1, &slices).unwrap();
    let from_4 = read_from(log, stream, 4);
    assert_eq!(from_4.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (4..=10).collect::<Vec<_>>());
    assert_eq!(from_4[0].1, b"record 4");
    assert_eq!(read_from(log, stream, 10), [(10, b"record 10".to_vec())]);
    assert!(read_from(log, stream, 11).is_empty());
    // Seq 0 does not exist; reading from it reads from the start.
    assert_eq!(read_from(log, stream, 0).len(), 10);
}

fn streams_do_not_mix(log: &dyn EventLog) {
    // Ids whose big-endian bytes differ only in the last byte, and across a
    // byte boundary, must not read into each other.
    let base = log.allocate_stream_id().unwrap();
    let first = base.next_multiple_of(256) + 255;
    let second = first + 1;
    log.append(second, 1, &[b"second"]).unwrap();
    log.append(first, 1, &[b"first 1", b"first 2"]).unwrap();
    assert_eq!(read_all(log, first).len(), 2);
    assert_eq!(read_all(log, second), [(1, b"second".to_vec())]);
    assert!(read_all(log, first + 2).is_empty());
    // Ids handed out afterwards stay above streams written under ids the
    // log did not hand out.
    assert!(log.allocate_stream_id().unwrap() > second);
}

fn payloads_of_any_size_round_trip(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    let empty: &[u8] = b"";
    let binary: Vec<u8> = (0..=255).collect();
    // Larger than sled's inline limit (about 128 KiB): goes to a blob file.
    let large: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
    log.append(stream, 1, &[empty, &binary, &large]).unwrap();
    assert_eq!(read_all(log, stream), [(1, Vec::new()), (2, binary), (3, large)]);
}

fn streams_lists_streams_with_records(log: &dyn EventLog) {
    let empty = log.allocate_stream_id().unwrap();
    let written = log.allocate_stream_id().unwrap();
    log.append(written, 1, &[b"x"]).unwrap();
    let streams = log.streams().unwrap();
    assert!(streams.contains(&written));
    assert!(!streams.contains(&empty), "a stream without records is listed");
    assert!(streams.windows(2).all(|pair| pair[0] < pair[1]), "not ascending: {streams:?}");
}

fn delete_stream_removes_it_all(log: &dyn EventLog) {
    let stream = log.allocate_stream_id().unwrap();
    let neighbour = log.allocate_stream_id().unwrap();
    log.append(stream, 1, &[b"a", b"b", b"c"]).unwrap();
    log.append(neighbour, 1, &[b"n"]).unwrap();
    log.delete_stream(stream).unwrap();
    assert!(read_all(log, stream).is_empty());
    assert_eq!(log.next_seq(stream).unwrap(), 1);
    assert!(!log.streams().unwrap().contains(&stream));
    assert_eq!(read_all(log, neighbour), [(1, b"n".to_vec())]);
    // Deleting what is not there is not an error.
    log.delete_stream(stream).unwrap();
    log.delete_stream(StreamId::MAX - 1).unwrap();
    assert!(log.allocate_stream_id().unwrap() > neighbour);
}

fn allocated_ids_increase(log: &dyn EventLog) {
    let ids: Vec<StreamId> = (0..20).map(|_| log.allocate_stream_id().unwrap()).collect();
    assert!(ids[0] > 0);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "not increasing: {ids:?}");
}

#[test]
fn sled_store_passes_the_conformance_suite() {
    let dir = temp_dir();
    conformance(&open(dir.path()));
    conformance_across_reopen(&mut || Box::new(open(dir.path())));
}
