//! SIGKILL durability: every append acknowledged before the kill is there, intact, after reopening.
//!
//! A child process (this binary, role "write") appends to four streams from
//! four threads and prints `@@ ack STREAM FIRST LAST` after each append returns.
//! The parent kills it with SIGKILL at a random point, reopens the store and
//! checks every acknowledged record; records appended but not yet
//! acknowledged may be there too, and must then be intact. The seed is
//! printed; set `RUNBOOK_STORAGE_CRASH_SEED` to replay a failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runbook_storage::{EventLog, KvState, Seq, SledStore, StoreOptions, StreamId};

use crate::support::{MESSAGE_MARKER, child_role, message, open, spawn_child, temp_dir};

const STREAMS: [StreamId; 4] = [1, 2, 3, 4];
const ROUNDS: u32 = 12;

/// The record at `seq` of `stream`: derived from both, so the parent knows
/// what every record must hold. Every 50th is large enough to go to one of
/// sled's blob files.
fn payload(stream: StreamId, seq: Seq) -> Vec<u8> {
    let text = format!("stream {stream} seq {seq};");
    let len = if seq.is_multiple_of(50) { 150_000 } else { text.len() * (1 + (seq % 5) as usize) };
    text.bytes().cycle().take(len).collect()
}

/// Small, so that checkpoints run, on their own thread, while the writers
/// go on and when the kill lands.
const CHECKPOINT_BYTES: u64 = 256 * 1024;

fn write_until_killed(dir: &std::path::Path) {
    let store = SledStore::open_with(dir, &StoreOptions { checkpoint_bytes: CHECKPOINT_BYTES }).unwrap();
    std::thread::scope(|scope| {
        let store = &store;
        // Key/value state beside the streams: each value acknowledged is
        // the highest the key may hold less than after the kill.
        scope.spawn(move || {
            // The writer's pid first, so that the parent tells this round's
            // values from an earlier round's.
            let pid = std::process::id();
            for value in 1_u32..20_000 {
                store.kv_put("crash", b"counter", &[pid.to_be_bytes(), value.to_be_bytes()].concat()).unwrap();
                let mut stdout = std::io::stdout().lock();
                if writeln!(stdout, "{MESSAGE_MARKER}kv {value}").and_then(|()| stdout.flush()).is_err() {
                    return;
                }
            }
        });
        for stream in STREAMS {
            scope.spawn(move || {
                let mut next = store.next_seq(stream).unwrap();
                // Bounded, so a child whose parent vanished stops by itself.
                for _ in 0..20_000 {
                    let count = 1 + next % 3;
                    let records: Vec<Vec<u8>> = (next..next + count).map(|seq| payload(stream, seq)).collect();
                    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                    let new_next = store.append(stream, next, &slices).unwrap();
                    let mut stdout = std::io::stdout().lock();
                    if writeln!(stdout, "{MESSAGE_MARKER}ack {stream} {next} {}", new_next - 1)
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return;
                    }
                    next = new_next;
                }
            });
        }
    });
}

/// xorshift64*: enough randomness to vary where the kill lands.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// Notes the acknowledgement `line` reports, if it is one; returns how many
/// acknowledgements it was (0 or 1). A key/value acknowledgement raises
/// `kv_acknowledged`.
fn record_ack(line: &str, acknowledged: &mut BTreeMap<StreamId, Seq>, kv_acknowledged: &mut u32, round: u32) -> u64 {
    if let Some(value) = message(line).and_then(|message| message.strip_prefix("kv ")) {
        *kv_acknowledged = value.parse().unwrap();
        return 0;
    }
    let Some(ack) = message(line).and_then(|message| message.strip_prefix("ack ")) else {
        return 0;
    };
    let fields: Vec<u64> = ack.split(' ').map(|field| field.parse().unwrap()).collect();
    let highest = acknowledged.entry(fields[0]).or_default();
    assert_eq!(fields[1], *highest + 1, "round {round}: stream {} acknowledged out of order", fields[0]);
    *highest = fields[2];
    1
}

#[test]
fn every_append_acknowledged_before_sigkill_survives() {
    if let Some((role, dir)) = child_role() {
        assert_eq!(role, "write");
        write_until_killed(&dir);
        return;
    }
    let seed = match std::env::var("RUNBOOK_STORAGE_CRASH_SEED") {
        Ok(seed) => seed.parse().unwrap(),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1,
    };
    println!("crash test seed {seed} (RUNBOOK_STORAGE_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = temp_dir();
    // The highest seq acknowledged per stream, over all rounds so far.
    let mut acknowledged: BTreeMap<StreamId, Seq> = BTreeMap::new();

    // Rounds in which the writer was killed after a checkpoint had started
    // a new log segment.
    let mut rounds_past_a_checkpoint = 0;

    for round in 1..=ROUNDS {
        let kill_after_acks = rng.below(400);
        let mut writer = spawn_child("crash::every_append_acknowledged_before_sigkill_survives", "write", dir.path());
        let writer_pid = writer.child.id();
        let mut kv_acknowledged = 0;
        let mut acks = 0;
        while acks < kill_after_acks {
            match writer.lines.next() {
                Some(line) => acks += record_ack(&line.unwrap(), &mut acknowledged, &mut kv_acknowledged, round),
                None => panic!("round {round}: the writer ended before being killed"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        writer.child.kill().unwrap();
        // Acknowledgements still in the pipe were made before the kill.
        for line in &mut writer.lines {
            acks += record_ack(&line.unwrap(), &mut acknowledged, &mut kv_acknowledged, round);
        }
        writer.child.wait().unwrap();
        // A closed store keeps no segment, so the writer began at segment 1.
        let segments = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
        let highest_segment = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().to_str()?.strip_suffix(".log")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if highest_segment > 1 {
            rounds_past_a_checkpoint += 1;
        }

        let store = open(dir.path());
        let counter = store.kv_get("crash", b"counter").unwrap();
        if kv_acknowledged > 0 {
            let counter = counter.unwrap_or_else(|| panic!("round {round}, seed {seed}: the counter is gone"));
            assert_eq!(counter.len(), 8, "round {round}, seed {seed}");
            let (pid, value) = counter.split_at(4);
            let pid = u32::from_be_bytes(pid.try_into().unwrap());
            let value = u32::from_be_bytes(value.try_into().unwrap());
            assert!(
                pid == writer_pid && value >= kv_acknowledged,
                "round {round}, seed {seed}: the counter holds {value} of pid {pid}, {kv_acknowledged} of pid {writer_pid} was acknowledged"
            );
        }
        // Every stream, also one whose appends were never acknowledged:
        // what survived of it counts as written from here on too.
        for stream in STREAMS {
            let highest = acknowledged.entry(stream).or_default();
            let mut seq = 0;
            for record in store.read(stream, 1) {
                let (read_seq, record) = record.unwrap_or_else(|error| panic!("round {round}, seed {seed}: {error}"));
                seq += 1;
                assert_eq!(read_seq, seq);
                assert!(
                    record == payload(stream, seq),
                    "round {round}, seed {seed}: record {seq} of stream {stream} differs"
                );
            }
            assert!(
                seq >= *highest,
                "round {round}, seed {seed}: stream {stream} has {seq} records, {highest} were acknowledged"
            );
            // What survived unacknowledged counts as written from here on.
            *highest = seq;
        }
        println!(
            "round {round}: killed after {acks} acks and counter {kv_acknowledged}, in segment {highest_segment} \
             ({segments} left); streams at {acknowledged:?}"
        );
    }
    assert!(rounds_past_a_checkpoint > 0, "no round was killed after a checkpoint: the test missed what it is for");
}
