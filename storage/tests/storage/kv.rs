//! Key/value namespaces: reads, writes, compare-and-swap, scans, and persistence.

use runbook_storage::KvState;

use crate::support::{open, temp_dir};

#[test]
fn put_get_delete_and_scan_in_key_order() {
    let dir = temp_dir();
    let store = open(dir.path());
    assert_eq!(store.kv_get("runs", b"a").unwrap(), None);
    store.kv_put("runs", b"b", b"2").unwrap();
    store.kv_put("runs", b"a", b"1").unwrap();
    store.kv_put("runs", b"c", b"3").unwrap();
    store.kv_put("runs", b"a", b"one").unwrap();
    assert_eq!(store.kv_get("runs", b"a").unwrap(), Some(b"one".to_vec()));
    store.kv_delete("runs", b"c").unwrap();
    store.kv_delete("runs", b"never written").unwrap();
    assert_eq!(store.kv_scan("runs").unwrap(), [(b"a".to_vec(), b"one".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
    // Namespaces are separate.
    assert_eq!(store.kv_get("schedules", b"a").unwrap(), None);
    assert!(store.kv_scan("schedules").unwrap().is_empty());
}

#[test]
fn compare_and_swap_returns_the_current_value_on_mismatch() {
    let dir = temp_dir();
    let store = open(dir.path());
    assert_eq!(store.kv_compare_and_swap("state", b"k", None, Some(b"v1")).unwrap(), Ok(()));
    assert_eq!(store.kv_compare_and_swap("state", b"k", None, Some(b"v2")).unwrap(), Err(Some(b"v1".to_vec())));
    assert_eq!(
        store.kv_compare_and_swap("state", b"k", Some(b"wrong"), Some(b"v2")).unwrap(),
        Err(Some(b"v1".to_vec()))
    );
    assert_eq!(store.kv_compare_and_swap("state", b"k", Some(b"v1"), Some(b"v2")).unwrap(), Ok(()));
    assert_eq!(store.kv_compare_and_swap("state", b"k", Some(b"v2"), None).unwrap(), Ok(()));
    assert_eq!(store.kv_compare_and_swap("state", b"k", Some(b"v2"), None).unwrap(), Err(None));
    assert_eq!(store.kv_get("state", b"k").unwrap(), None);
}

#[test]
fn writes_survive_reopening_including_unsynced_ones_after_a_clean_close() {
    let dir = temp_dir();
    let store = open(dir.path());
    store.kv_put("runs", b"synced", b"1").unwrap();
    store.kv_put_unsynced("runs", b"unsynced", b"2").unwrap();
    assert_eq!(store.kv_get("runs", b"unsynced").unwrap(), Some(b"2".to_vec()));
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.kv_get("runs", b"synced").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.kv_get("runs", b"unsynced").unwrap(), Some(b"2".to_vec()));
}
