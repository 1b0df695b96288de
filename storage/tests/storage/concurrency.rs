//! Many writers at once: no seq written twice, no gap, nothing acknowledged lost, flushes shared.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use runbook_storage::{EventLog, Seq, SledStore, StorageError, StreamId};

use crate::support::{open, temp_dir};

/// The seqs a writer was acknowledged and what it wrote there.
type Acknowledged = Vec<(Seq, Vec<u8>)>;

fn payload(stream: StreamId, seq: Seq) -> Vec<u8> {
    format!("stream {stream} seq {seq}").into_bytes()
}

/// Appends `count` records one at a time to a stream no one else writes.
fn append_own_stream(store: &SledStore, stream: StreamId, count: u64) {
    for seq in 1..=count {
        assert_eq!(store.append(stream, seq, &[&payload(stream, seq)]).unwrap(), seq + 1);
    }
}

#[test]
fn writers_on_own_streams_and_racing_on_one_lose_nothing() {
    const OWN_STREAM_WRITERS: u64 = 8;
    const RECORDS_PER_WRITER: u64 = 200;
    const RACERS: u64 = 4;
    const RECORDS_PER_RACER: u64 = 50;

    let dir = temp_dir();
    let store = open(dir.path());
    let shared_stream = store.allocate_stream_id().unwrap();
    let start = Arc::new(Barrier::new((OWN_STREAM_WRITERS + RACERS) as usize));

    let own: Vec<(StreamId, thread::JoinHandle<()>)> = (0..OWN_STREAM_WRITERS)
        .map(|_| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            let stream = store.allocate_stream_id().unwrap();
            (
                stream,
                thread::spawn(move || {
                    start.wait();
                    append_own_stream(&store, stream, RECORDS_PER_WRITER);
                }),
            )
        })
        .collect();
    // Racers append to one stream with a compare-and-swap retry loop; each
    // returns the seqs it was acknowledged and what it wrote there.
    let racers: Vec<thread::JoinHandle<Acknowledged>> = (0..RACERS)
        .map(|racer| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut acknowledged = Vec::new();
                let mut conflicts = 0;
                while (acknowledged.len() as u64) < RECORDS_PER_RACER {
                    let next = store.next_seq(shared_stream).unwrap();
                    let record = format!("racer {racer} record {}", acknowledged.len()).into_bytes();
                    match store.append(shared_stream, next, &[&record]) {
                        Ok(new_next) => {
                            assert_eq!(new_next, next + 1);
                            acknowledged.push((next, record));
                        }
                        Err(StorageError::Conflict { .. }) => conflicts += 1,
                        Err(error) => panic!("racer {racer}: {error}"),
                    }
                }
                eprintln!("racer {racer}: {conflicts} conflicts");
                acknowledged
            })
        })
        .collect();

    let own_streams: Vec<StreamId> = own
        .into_iter()
        .map(|(stream, writer)| {
            writer.join().unwrap();
            stream
        })
        .collect();
    let mut acknowledged: BTreeMap<Seq, Vec<u8>> = BTreeMap::new();
    for racer in racers {
        for (seq, record) in racer.join().unwrap() {
            assert!(acknowledged.insert(seq, record).is_none(), "seq {seq} acknowledged twice");
        }
    }
    let total_records = RACERS * RECORDS_PER_RACER;
    assert_eq!(acknowledged.keys().copied().collect::<Vec<_>>(), (1..=total_records).collect::<Vec<_>>());

    let (flushes, appends) = store.flush_stats();
    println!("group commit: {flushes} flushes for {appends} appends");
    assert_eq!(appends, OWN_STREAM_WRITERS * RECORDS_PER_WRITER + total_records);
    assert!(flushes < appends, "{flushes} flushes for {appends} appends: no flush was shared");
    drop(store);

    let store = open(dir.path());
    for stream in own_streams {
        let records: Vec<(Seq, Vec<u8>)> = store.read(stream, 1).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len() as u64, RECORDS_PER_WRITER);
        for (seq, record) in records {
            assert_eq!(record, payload(stream, seq));
        }
    }
    let shared: BTreeMap<Seq, Vec<u8>> = store.read(shared_stream, 1).collect::<Result<_, _>>().unwrap();
    assert_eq!(shared, acknowledged);
}

#[test]
fn async_appends_from_many_tasks_share_flushes() {
    const TASKS: u64 = 32;
    const RECORDS_PER_TASK: u64 = 25;
    let dir = temp_dir();
    let store = open(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let streams: Vec<StreamId> = (0..TASKS).map(|_| store.allocate_stream_id().unwrap()).collect();
    runtime.block_on(async {
        let tasks: Vec<_> = streams
            .iter()
            .map(|&stream| {
                let store = store.clone();
                tokio::spawn(async move {
                    for seq in 1..=RECORDS_PER_TASK {
                        let next = store.append_async(stream, seq, vec![payload(stream, seq)]).await.unwrap();
                        assert_eq!(next, seq + 1);
                    }
                    // A conflict comes back through the future too.
                    let conflict = store.append_async(stream, 1, vec![b"late".to_vec()]).await;
                    assert!(matches!(conflict, Err(StorageError::Conflict { expected: 1, .. })), "{conflict:?}");
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let (flushes, appends) = store.flush_stats();
    println!("async group commit: {flushes} flushes for {appends} appends");
    assert_eq!(appends, TASKS * RECORDS_PER_TASK);
    assert!(flushes < appends, "{flushes} flushes for {appends} appends: no flush was shared");
    drop(store);

    let store = open(dir.path());
    for stream in streams {
        assert_eq!(store.read(stream, 1).count() as u64, RECORDS_PER_TASK);
        assert_eq!(store.next_seq(stream).unwrap(), RECORDS_PER_TASK + 1);
    }
}

/// Prints appends per second, one thread and eight; run with `--nocapture`
/// (and `--release` for figures that mean something).
#[test]
fn throughput_figures() {
    const SINGLE: u64 = 500;
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 250;
    let dir = temp_dir();
    let store = open(dir.path());

    let stream = store.allocate_stream_id().unwrap();
    let started = Instant::now();
    append_own_stream(&store, stream, SINGLE);
    let single_rate = SINGLE as f64 / started.elapsed().as_secs_f64();
    let (single_flushes, _) = store.flush_stats();

    let streams: Vec<StreamId> = (0..THREADS).map(|_| store.allocate_stream_id().unwrap()).collect();
    let (flushes_before, appends_before) = store.flush_stats();
    let started = Instant::now();
    thread::scope(|scope| {
        for &stream in &streams {
            let store = &store;
            scope.spawn(move || append_own_stream(store, stream, PER_THREAD));
        }
    });
    let threaded_rate = (THREADS * PER_THREAD) as f64 / started.elapsed().as_secs_f64();
    let (flushes, appends) = store.flush_stats();
    println!(
        "throughput: 1 thread {single_rate:.0} appends/s ({single_flushes} flushes incl. id allocation); \
         {THREADS} threads {threaded_rate:.0} appends/s, {} flushes for {} appends; store {} KiB",
        flushes - flushes_before,
        appends - appends_before,
        store.size_on_disk().unwrap() / 1024,
    );
    assert!(store.size_on_disk().unwrap() > 0);
}
