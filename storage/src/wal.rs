//! The write-ahead log: what makes a write to the store durable.
//!
//! sled keeps the store's data and serves every read; this log is what a
//! durable write waits for. Each write to sled is also encoded as one frame
//! and appended to an in-memory buffer, in the same critical section, so the
//! frames are in the order sled applied the writes. Group commit writes the
//! buffer to the current segment file and `fdatasync`s it: one device round
//! trip per batch of writes, the same as appending to any file, where a
//! flush of sled itself costs two or three (sled writes its buffer from its
//! own thread pool, waits with `sync_file_range`, and still needs an
//! `fdatasync`).
//!
//! A checkpoint makes sled's own files durable (`Db::flush`, `fdatasync` of
//! its `db` file, `fsync` of new blob files) and then removes the segments
//! it covers: it starts a new segment first, so every frame in the older
//! ones belongs to a write sled had applied before the flush began. Opening
//! a store replays the segments left by a process that did not close it
//! (killed, or a power loss), checkpoints, and starts a fresh segment; a
//! closed store has none.
//!
//! Replay has to be right over whatever sled itself recovered, which is a
//! prefix of the writes that may be shorter or longer than the log's:
//! - records are inserted where absent (a stream's head is its last record),
//!   so replaying an append that sled already has changes nothing;
//! - an append whose previous record is missing belongs to a stream that a
//!   later deletion, recovered by sled but never acknowledged, removed: it
//!   is skipped rather than bringing back half a stream;
//! - a record sled already has must be the one the log has (a stream id is
//!   never written again after its stream was deleted); opening refuses a
//!   store where it is not;
//! - key/value writes are replayed in order, so each key ends with the
//!   value of its last logged write; a later write that sled recovered but
//!   the log never made durable was never acknowledged, and is undone.
//!
//! A frame is `[payload length: u32 LE][crc32 of payload: u32 LE][payload]`.
//! Each flush writes one batch: its frames, then a batch-end frame holding
//! the batch's number in the segment (0, 1, 2, ...). Replay applies whole
//! batches only. A crash while a batch is written leaves it without its end,
//! or with a torn frame: that batch was never acknowledged, and replay stops
//! before it. A damaged frame followed by the end of a later batch is not a
//! crash's doing (the later batch was written only after the damaged one was
//! synced): opening refuses the store rather than lose what came after.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Seq, StreamId};

/// Name of the directory of segments inside the store directory.
pub(crate) const DIR_NAME: &str = "wal";

/// A segment this large is followed by a checkpoint: the bound on what a
/// store reopened after a crash replays.
pub(crate) const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

const FRAME_HEADER_LEN: usize = 8;

const TAG_APPEND: u8 = 1;
const TAG_DELETE_STREAM: u8 = 2;
const TAG_PUT: u8 = 3;
const TAG_REMOVE: u8 = 4;
const TAG_BATCH_END: u8 = 5;

/// One write, as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Records (checksummed values as stored) from seq `first` on.
    Append { stream: StreamId, first: Seq, values: Vec<Vec<u8>> },
    /// Every record and the head of a stream removed.
    DeleteStream { stream: StreamId },
    /// `key` set to `value` in the sled tree `tree`.
    Put { tree: Vec<u8>, key: Vec<u8>, value: Vec<u8> },
    /// `key` removed from the sled tree `tree`.
    Remove { tree: Vec<u8>, key: Vec<u8> },
}

/// Appends the frame of an append of `values` at `first` to `buffer`.
pub(crate) fn encode_append(buffer: &mut Vec<u8>, stream: StreamId, first: Seq, values: &[Vec<u8>]) {
    frame(buffer, |payload| {
        payload.push(TAG_APPEND);
        payload.extend_from_slice(&stream.to_le_bytes());
        payload.extend_from_slice(&first.to_le_bytes());
        put_len(payload, values.len());
        for value in values {
            put_bytes(payload, value);
        }
    });
}

/// Appends the frame of the deletion of `stream` to `buffer`.
pub(crate) fn encode_delete_stream(buffer: &mut Vec<u8>, stream: StreamId) {
    frame(buffer, |payload| {
        payload.push(TAG_DELETE_STREAM);
        payload.extend_from_slice(&stream.to_le_bytes());
    });
}

/// Appends the frame of `tree[key] = value` (or its removal, for `None`) to `buffer`.
pub(crate) fn encode_put(buffer: &mut Vec<u8>, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
    frame(buffer, |payload| {
        payload.push(if value.is_some() { TAG_PUT } else { TAG_REMOVE });
        put_bytes(payload, tree);
        put_bytes(payload, key);
        if let Some(value) = value {
            put_bytes(payload, value);
        }
    });
}

/// Appends the frame that ends batch `batch` of a segment to `buffer`.
pub(crate) fn encode_batch_end(buffer: &mut Vec<u8>, batch: u64) {
    frame(buffer, |payload| {
        payload.push(TAG_BATCH_END);
        payload.extend_from_slice(&batch.to_le_bytes());
    });
}

fn frame(buffer: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    write_payload(buffer);
    let payload = &buffer[start + FRAME_HEADER_LEN..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buffer[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_len(payload: &mut Vec<u8>, len: usize) {
    // Lengths come from values held in memory and written to sled, which
    // caps them far below 4 GiB; a larger one would fail sled's write first.
    payload.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(payload: &mut Vec<u8>, bytes: &[u8]) {
    put_len(payload, bytes.len());
    payload.extend_from_slice(bytes);
}

/// What replay makes of one segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The writes of every whole batch, in order.
    pub(crate) ops: Vec<Op>,
    pub(crate) end: End,
}

/// How a segment's bytes end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// After a whole batch: at the end of the bytes, or where only the zeros
    /// written ahead of frames remain.
    Clean,
    /// In a batch that has no end from byte `at` on: a write a crash cut
    /// short, never acknowledged.
    Torn { at: usize },
    /// At a damaged frame at byte `at`, after which a later batch ends.
    Damaged { at: usize },
}

/// A frame, decoded.
enum Frame {
    Write(Op),
    BatchEnd(u64),
}

/// The whole batches of one segment's bytes, and how the bytes end.
pub(crate) fn decode_frames(bytes: &[u8]) -> Decoded {
    let mut ops = Vec::new();
    let mut batch = Vec::new();
    // Where the batch being read starts, and its number.
    let (mut batch_start, mut batch_number) = (0, 0);
    let mut at = 0;
    while at < bytes.len() {
        match decode_frame(&bytes[at..]) {
            Some((Frame::Write(op), len)) => {
                batch.push(op);
                at += len;
            }
            Some((Frame::BatchEnd(number), len)) => {
                ops.append(&mut batch);
                at += len;
                batch_start = at;
                batch_number = number + 1;
            }
            None if bytes[at..].iter().all(|&byte| byte == 0) => break,
            None => {
                // Damage is told from a torn write by what follows it: the
                // end of a later batch, which was written only after this
                // one was acknowledged.
                let later = (at + 1..bytes.len()).any(|from| {
                    matches!(decode_frame(&bytes[from..]), Some((Frame::BatchEnd(number), _)) if number > batch_number)
                });
                let end = if later { End::Damaged { at } } else { End::Torn { at: batch_start } };
                return Decoded { ops, end };
            }
        }
    }
    let end = if batch.is_empty() { End::Clean } else { End::Torn { at: batch_start } };
    Decoded { ops, end }
}

/// One frame at the start of `bytes` and its length, if it is whole and intact.
fn decode_frame(bytes: &[u8]) -> Option<(Frame, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut reader = Reader(payload);
    let op = match reader.u8()? {
        TAG_APPEND => {
            let stream = reader.u64()?;
            let first = reader.u64()?;
            let count = reader.u32()?;
            let values = (0..count).map(|_| reader.bytes()).collect::<Option<Vec<_>>>()?;
            Op::Append { stream, first, values }
        }
        TAG_DELETE_STREAM => Op::DeleteStream { stream: reader.u64()? },
        TAG_PUT => Op::Put { tree: reader.bytes()?, key: reader.bytes()?, value: reader.bytes()? },
        TAG_REMOVE => Op::Remove { tree: reader.bytes()?, key: reader.bytes()? },
        TAG_BATCH_END => {
            let number = reader.u64()?;
            return reader.0.is_empty().then_some((Frame::BatchEnd(number), FRAME_HEADER_LEN + len));
        }
        _ => return None,
    };
    reader.0.is_empty().then_some((Frame::Write(op), FRAME_HEADER_LEN + len))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        Some(self.take(len)?.to_vec())
    }
}

/// The segment files in `wal_dir`, oldest first, with their numbers.
pub(crate) fn segments(wal_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(wal_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let number = name.to_str().and_then(|name| name.strip_suffix(".log")).and_then(|stem| stem.parse().ok());
        match number {
            Some(number) => segments.push((number, entry.path())),
            None => tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a log segment"),
        }
    }
    segments.sort();
    Ok(segments)
}

/// The path of segment `number`.
pub(crate) fn segment_path(wal_dir: &Path, number: u64) -> PathBuf {
    wal_dir.join(format!("{number:020}.log"))
}

/// The segment the flusher appends to.
///
/// Frames are written over zeros written ahead of them, [`PREALLOCATE_BYTES`]
/// at a time: `fdatasync` of blocks the file already has writes the data
/// alone, where an append also writes the inode's new size (measured here,
/// ext4 on a virtio disk: 0.087 against 0.127 ms per synced 300-byte write).
/// Replay reads trailing zeros as the end of the log.
pub(crate) struct Segment {
    pub(crate) number: u64,
    file: File,
    /// Bytes of frames written.
    len: u64,
    /// The number the next batch's end frame carries.
    next_batch: u64,
    /// Bytes the file holds, zeros after `len`.
    allocated: u64,
}

/// How much zeroed room a segment grows by when its frames reach its end.
const PREALLOCATE_BYTES: u64 = 256 * 1024;

impl Segment {
    /// Creates segment `number` in `wal_dir` and makes its directory entry durable.
    pub(crate) fn create(wal_dir: &Path, number: u64) -> io::Result<Segment> {
        let file = OpenOptions::new().write(true).create_new(true).open(segment_path(wal_dir, number))?;
        sync_dir(wal_dir)?;
        Ok(Segment { number, file, len: 0, allocated: 0, next_batch: 0 })
    }

    /// A segment over an open file, for tests that need a file that fails.
    #[cfg(test)]
    pub(crate) fn over(file: File) -> Segment {
        Segment { number: 1, file, len: 0, allocated: 0, next_batch: 0 }
    }

    /// Ends the batch of frames in `frames` and writes it after the frames
    /// already written, durably.
    pub(crate) fn write_batch(&mut self, frames: &mut Vec<u8>) -> io::Result<()> {
        encode_batch_end(frames, self.next_batch);
        self.write_durably(frames)?;
        self.next_batch += 1;
        Ok(())
    }

    /// Writes `bytes` after the frames already written and makes them durable.
    fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.len + bytes.len() as u64;
        if end > self.allocated {
            // One `fdatasync` below covers the zeros, the frames and the new size.
            let allocated = (end / PREALLOCATE_BYTES + 1) * PREALLOCATE_BYTES;
            let zeros = vec![0; usize::try_from(allocated - self.allocated).map_err(io::Error::other)?];
            self.file.write_all_at(&zeros, self.allocated)?;
            self.allocated = allocated;
        }
        self.file.write_all_at(bytes, self.len)?;
        self.file.sync_data()?;
        self.len = end;
        Ok(())
    }

    /// Bytes written to this segment.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Makes the entries of directory `dir` (files created or removed) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    /// Two batches: every kind of write, ended as batch 0, then one append, ended as batch 1.
    fn two_batches() -> (Vec<u8>, Vec<Op>, usize) {
        let mut buffer = Vec::new();
        encode_append(&mut buffer, 7, 3, &[b"three".to_vec(), Vec::new(), vec![0xff; 300]]);
        encode_delete_stream(&mut buffer, 9);
        encode_put(&mut buffer, b"kv:leases", b"key", Some(b"value"));
        encode_put(&mut buffer, b"meta", b"gone", None);
        encode_batch_end(&mut buffer, 0);
        let second = buffer.len();
        encode_append(&mut buffer, 7, 6, &[b"six".to_vec()]);
        encode_batch_end(&mut buffer, 1);
        let ops = vec![
            Op::Append { stream: 7, first: 3, values: vec![b"three".to_vec(), Vec::new(), vec![0xff; 300]] },
            Op::DeleteStream { stream: 9 },
            Op::Put { tree: b"kv:leases".to_vec(), key: b"key".to_vec(), value: b"value".to_vec() },
            Op::Remove { tree: b"meta".to_vec(), key: b"gone".to_vec() },
            Op::Append { stream: 7, first: 6, values: vec![b"six".to_vec()] },
        ];
        (buffer, ops, second)
    }

    #[test]
    fn every_kind_of_frame_round_trips() {
        let (buffer, ops, _) = two_batches();
        assert_eq!(decode_frames(&buffer), Decoded { ops, end: End::Clean });
    }

    #[test]
    fn a_batch_cut_short_anywhere_is_dropped_whole() {
        let (buffer, ops, second) = two_batches();
        for cut in second + 1..buffer.len() {
            let decoded = decode_frames(&buffer[..cut]);
            assert_eq!(decoded, Decoded { ops: ops[..4].to_vec(), end: End::Torn { at: second } }, "cut at {cut}");
        }
        // Cut inside the batch's end frame, where the zeros written ahead
        // of frames begin: the same.
        let mut zeros = buffer[..buffer.len() - 10].to_vec();
        zeros.extend_from_slice(&[0; 10 + 64]);
        assert_eq!(decode_frames(&zeros).end, End::Torn { at: second });
    }

    #[test]
    fn a_damaged_frame_that_a_later_batch_follows_is_damage_not_a_torn_write() {
        let (mut buffer, _, _) = two_batches();
        // A byte inside the first frame's first value.
        buffer[FRAME_HEADER_LEN + 1 + 8 + 8 + 4 + 4] ^= 0x01;
        assert_eq!(decode_frames(&buffer), Decoded { ops: Vec::new(), end: End::Damaged { at: 0 } });
        // Damage in the last batch, which nothing follows: torn.
        let (mut buffer, ops, second) = two_batches();
        buffer[second + FRAME_HEADER_LEN + 2] ^= 0x01;
        assert_eq!(decode_frames(&buffer), Decoded { ops: ops[..4].to_vec(), end: End::Torn { at: second } });
    }

    #[test]
    fn zeros_end_the_log_cleanly_and_anything_after_them_does_not() {
        let (mut buffer, ops, _) = two_batches();
        let end = buffer.len();
        buffer.extend_from_slice(&[0; 64]);
        assert_eq!(decode_frames(&buffer), Decoded { ops: ops.clone(), end: End::Clean });
        buffer.push(1);
        assert_eq!(decode_frames(&buffer), Decoded { ops, end: End::Torn { at: end } });
    }

    #[test]
    fn a_segment_grows_by_zeros_ahead_of_its_frames_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), 3).unwrap();
        let mut frames = Vec::new();
        encode_append(&mut frames, 1, 1, &[vec![7; 1000]]);
        let op = Op::Append { stream: 1, first: 1, values: vec![vec![7; 1000]] };
        // Enough batches to grow past the first preallocation.
        let rounds = PREALLOCATE_BYTES as usize / frames.len() + 2;
        for _ in 0..rounds {
            segment.write_batch(&mut frames.clone()).unwrap();
        }
        let bytes = fs::read(segment_path(dir.path(), 3)).unwrap();
        assert_eq!(bytes.len() as u64, 2 * PREALLOCATE_BYTES, "zeros ahead of the frames");
        assert!(segment.len() > PREALLOCATE_BYTES);
        assert_eq!(decode_frames(&bytes), Decoded { ops: vec![op; rounds], end: End::Clean });
    }
}
