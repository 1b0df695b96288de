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

use runbook_storage::{EventLog, Seq, StreamId};

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

fn write_until_killed(dir: &std::path::Path) {
    let store = open(dir);
    std::thread::scope(|scope| {
        for stream in STREAMS {
            let store = &store;
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
/// acknowledgements it was (0 or 1).
fn record_ack(line: &str, acknowledged: &mut BTreeMap<StreamId, Seq>, round: u32) -> u64 {
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

    for round in 1..=ROUNDS {
        let kill_after_acks = rng.below(400);
        let mut writer = spawn_child("crash::every_append_acknowledged_before_sigkill_survives", "write", dir.path());
        let mut acks = 0;
        while acks < kill_after_acks {
            match writer.lines.next() {
                Some(line) => acks += record_ack(&line.unwrap(), &mut acknowledged, round),
                None => panic!("round {round}: the writer ended before being killed"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        writer.child.kill().unwrap();
        // Acknowledgements still in the pipe were made before the kill.
        for line in &mut writer.lines {
            acks += record_ack(&line.unwrap(), &mut acknowledged, round);
        }
        writer.child.wait().unwrap();

        let store = open(dir.path());
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
        println!("round {round}: killed after {acks} acks; streams at {acknowledged:?}");
    }
}
