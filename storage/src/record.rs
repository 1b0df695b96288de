//! On-disk layout of the event log: record keys and checksummed record values.
//!
//! A key is the stream id then the seq, both big-endian `u64`: sled orders
//! keys by raw bytes, so a prefix scan on the stream id yields the stream in
//! seq order. A value is `[crc32 of payload, 4 bytes big-endian][payload]`.

use crate::{Seq, StorageError, StreamId};

/// Length of a record key: stream id and seq, 8 bytes each.
const KEY_LEN: usize = 16;

/// Length of the checksum in front of every payload.
const CHECKSUM_LEN: usize = 4;

/// The key of record `seq` of `stream`.
pub(crate) fn record_key(stream: StreamId, seq: Seq) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    key[..8].copy_from_slice(&stream.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a record key into stream id and seq; `None` if it is not 16 bytes.
pub(crate) fn parse_record_key(key: &[u8]) -> Option<(StreamId, Seq)> {
    let stream = key.get(..8)?.try_into().ok().map(u64::from_be_bytes)?;
    let seq = key.get(8..)?.try_into().ok().map(u64::from_be_bytes)?;
    Some((stream, seq))
}

/// Encodes a payload for writing, computing its checksum now, right before
/// the write, so that nothing between here and the disk goes unchecked.
pub(crate) fn encode_record(payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(CHECKSUM_LEN + payload.len());
    value.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    value.extend_from_slice(payload);
    value
}

/// Verifies a value just read and returns its payload.
pub(crate) fn decode_record(stream: StreamId, seq: Seq, value: &[u8]) -> Result<Vec<u8>, StorageError> {
    let Some((stored, payload)) = value.split_first_chunk::<CHECKSUM_LEN>() else {
        return Err(StorageError::Corrupt {
            stream,
            seq,
            reason: format!("value is {} bytes, too short to hold a checksum", value.len()),
        });
    };
    let stored = u32::from_be_bytes(*stored);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(StorageError::Corrupt {
            stream,
            seq,
            reason: format!("checksum mismatch: stored {stored:08x}, computed {computed:08x}"),
        });
    }
    Ok(payload.to_vec())
}

/// Decodes a big-endian `u64` value (a stream head or a counter).
pub(crate) fn decode_u64(value: &[u8]) -> Option<u64> {
    value.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_stream_then_seq() {
        let mut keys = [record_key(2, 1), record_key(1, 256), record_key(1, 2), record_key(256, 0)];
        keys.sort();
        assert_eq!(keys, [record_key(1, 2), record_key(1, 256), record_key(2, 1), record_key(256, 0)]);
        assert_eq!(parse_record_key(&record_key(7, 9)), Some((7, 9)));
        assert_eq!(parse_record_key(&[0; 15]), None);
    }

    #[test]
    fn a_record_round_trips_and_a_flipped_bit_is_caught() {
        let value = encode_record(b"hello");
        assert_eq!(decode_record(1, 1, &value).unwrap(), b"hello");
        let mut flipped = value.clone();
        flipped[6] ^= 0x01;
        let error = decode_record(3, 4, &flipped).unwrap_err();
        assert!(matches!(error, StorageError::Corrupt { stream: 3, seq: 4, .. }), "{error}");
        let error = decode_record(3, 5, &value[..3]).unwrap_err();
        assert!(error.to_string().contains("too short"), "{error}");
        assert_eq!(decode_record(1, 1, &encode_record(b"")).unwrap(), b"");
    }
}
