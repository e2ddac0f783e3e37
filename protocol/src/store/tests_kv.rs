//! Exact-output tests of the KV commands and reads.

use super::*;

fn set(key: &str, value: &str, flags: u64) -> Command {
    Command::Kv(KvOp::Set {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags,
    })
}

fn cas(key: &str, value: &str, index: u64) -> Command {
    Command::Kv(KvOp::Cas {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        index,
    })
}

fn delete(key: &str) -> Command {
    Command::Kv(KvOp::Delete { key: key.into() })
}

fn delete_cas(key: &str, index: u64) -> Command {
    Command::Kv(KvOp::DeleteCas {
        key: key.into(),
        index,
    })
}

fn delete_tree(prefix: &str) -> Command {
    Command::Kv(KvOp::DeleteTree {
        prefix: prefix.into(),
    })
}

fn entry(key: &str, value: &str, flags: u64, create_index: u64, modify_index: u64) -> KvEntry {
    KvEntry {
        key: key.into(),
        value: value.as_bytes().into(),
        flags,
        lock_index: 0,
        session: None,
        create_index,
        modify_index,
    }
}

#[test]
fn set_creates_then_updates_keeping_create_index() {
    let mut store = Store::new();
    assert_eq!(store.apply(5, &set("a", "1", 7)), CommandResult::Done);
    assert_eq!(store.kv_get("a"), Some(&entry("a", "1", 7, 5, 5)));
    assert_eq!(
        store.apply(9, &set("a", "2", u64::MAX)),
        CommandResult::Done
    );
    assert_eq!(store.kv_get("a"), Some(&entry("a", "2", u64::MAX, 5, 9)));
    assert_eq!(store.table_index(Table::Kv), 9);
    assert_eq!(store.last_index(), 9);
}

#[test]
fn set_with_identical_value_still_moves_modify_index() {
    // Consul's KV does not compare content: every write is a new version.
    let mut store = Store::new();
    store.apply(1, &set("a", "x", 0));
    store.apply(2, &set("a", "x", 0));
    assert_eq!(store.kv_get("a"), Some(&entry("a", "x", 0, 1, 2)));
    assert_eq!(store.table_index(Table::Kv), 2);
}

#[test]
fn set_keeps_lock_index_and_session() {
    let mut store = Store::new();
    store.apply(1, &set("lock", "a", 0));
    // Locks are not a command yet; plant the state a lock acquisition would leave.
    if let Some(e) = store.kv.get_mut("lock") {
        let e = std::sync::Arc::make_mut(e);
        e.lock_index = 3;
        e.session = Some("sess-1".into());
    }
    store.apply(4, &set("lock", "b", 1));
    let e = store.kv_get("lock").cloned();
    assert_eq!(
        e,
        Some(KvEntry {
            lock_index: 3,
            session: Some("sess-1".into()),
            ..entry("lock", "b", 1, 1, 4)
        })
    );
}

#[test]
fn binary_values_are_kept_exactly() {
    let mut store = Store::new();
    let value = vec![0u8, 255, 10, 13, 0xc3];
    store.apply(
        1,
        &Command::Kv(KvOp::Set {
            key: "bin".into(),
            value: value.clone(),
            flags: 1,
        }),
    );
    assert_eq!(store.kv_get("bin").map(|e| e.value.to_vec()), Some(value));
}

#[test]
fn cas_zero_only_when_absent() {
    let mut store = Store::new();
    assert_eq!(store.apply(1, &cas("k", "a", 0)), CommandResult::Bool(true));
    assert_eq!(store.kv_get("k"), Some(&entry("k", "a", 0, 1, 1)));
    assert_eq!(
        store.apply(2, &cas("k", "b", 0)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.kv_get("k"), Some(&entry("k", "a", 0, 1, 1)));
    assert_eq!(store.table_index(Table::Kv), 1);
    assert_eq!(store.last_index(), 2);
}

#[test]
fn cas_zero_succeeds_on_a_tombstoned_key() {
    let mut store = Store::new();
    store.apply(1, &set("k", "a", 0));
    store.apply(2, &delete("k"));
    assert_eq!(store.apply(3, &cas("k", "b", 0)), CommandResult::Bool(true));
    assert_eq!(store.kv_get("k"), Some(&entry("k", "b", 0, 3, 3)));
    assert_eq!(store.kv_tombstone_count(), 0);
}

#[test]
fn cas_index_must_match_modify_index() {
    let mut store = Store::new();
    store.apply(1, &set("k", "a", 0));
    store.apply(2, &set("k", "b", 0));
    // The create index is not the version.
    assert_eq!(
        store.apply(3, &cas("k", "c", 1)),
        CommandResult::Bool(false)
    );
    assert_eq!(
        store.apply(4, &cas("k", "c", 99)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.kv_get("k"), Some(&entry("k", "b", 0, 1, 2)));
    assert_eq!(store.apply(5, &cas("k", "c", 2)), CommandResult::Bool(true));
    assert_eq!(store.kv_get("k"), Some(&entry("k", "c", 0, 1, 5)));
    // The old version no longer matches.
    assert_eq!(
        store.apply(6, &cas("k", "d", 2)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.table_index(Table::Kv), 5);
}

#[test]
fn cas_nonzero_on_absent_key_fails() {
    let mut store = Store::new();
    assert_eq!(
        store.apply(1, &cas("k", "a", 1)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.kv_get("k"), None);
    assert_eq!(store.table_index(Table::Kv), 0);
}

#[test]
fn delete_absent_is_done_and_changes_nothing() {
    let mut store = Store::new();
    store.apply(1, &set("other", "x", 0));
    assert_eq!(store.apply(2, &delete("missing")), CommandResult::Done);
    assert_eq!(store.table_index(Table::Kv), 1);
    assert_eq!(store.kv_tombstone_count(), 0);
    assert_eq!(store.kv_prefix_index("missing"), 0);
    assert_eq!(store.last_index(), 2);
}

#[test]
fn delete_leaves_a_tombstone_that_holds_the_prefix_index() {
    let mut store = Store::new();
    store.apply(1, &set("web/a", "1", 0));
    store.apply(2, &set("web/b", "2", 0));
    store.apply(3, &set("db/a", "3", 0));
    assert_eq!(store.apply(4, &delete("web/b")), CommandResult::Done);
    assert_eq!(store.kv_get("web/b"), None);
    assert_eq!(store.kv_prefix_index("web/"), 4);
    assert_eq!(store.kv_prefix_index("web/a"), 1);
    assert_eq!(store.kv_prefix_index("db/"), 3);
    assert_eq!(store.kv_prefix_index(""), 4);
    assert_eq!(store.kv_prefix_index("nothing/"), 0);
    assert_eq!(store.table_index(Table::Kv), 4);
    // Re-creating the key clears its tombstone.
    store.apply(5, &set("web/b", "again", 0));
    assert_eq!(store.kv_tombstone_count(), 0);
    assert_eq!(
        store.kv_get("web/b"),
        Some(&entry("web/b", "again", 0, 5, 5))
    );
}

#[test]
fn delete_cas_edge_cases() {
    let mut store = Store::new();
    store.apply(1, &set("k", "a", 0));
    // Index 0 never deletes, even though the key exists.
    assert_eq!(
        store.apply(2, &delete_cas("k", 0)),
        CommandResult::Bool(false)
    );
    // A wrong index does not delete.
    assert_eq!(
        store.apply(3, &delete_cas("k", 7)),
        CommandResult::Bool(false)
    );
    // An absent key cannot match.
    assert_eq!(
        store.apply(4, &delete_cas("absent", 1)),
        CommandResult::Bool(false)
    );
    assert_eq!(
        store.apply(5, &delete_cas("absent", 0)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.kv_get("k"), Some(&entry("k", "a", 0, 1, 1)));
    assert_eq!(store.table_index(Table::Kv), 1);
    assert_eq!(store.kv_tombstone_count(), 0);
    // The matching index deletes and leaves a tombstone at the deleting index.
    assert_eq!(
        store.apply(6, &delete_cas("k", 1)),
        CommandResult::Bool(true)
    );
    assert_eq!(store.kv_get("k"), None);
    assert_eq!(store.kv_prefix_index("k"), 6);
    assert_eq!(store.table_index(Table::Kv), 6);
    // Deleting again fails: the key is gone.
    assert_eq!(
        store.apply(7, &delete_cas("k", 1)),
        CommandResult::Bool(false)
    );
    assert_eq!(store.table_index(Table::Kv), 6);
}

#[test]
fn delete_tree_tombstones_every_key_under_the_prefix() {
    let mut store = Store::new();
    store.apply(1, &set("app/a", "1", 0));
    store.apply(2, &set("app/b/c", "2", 0));
    store.apply(3, &set("apple", "3", 0));
    store.apply(4, &set("other", "4", 0));
    assert_eq!(store.apply(5, &delete_tree("app/")), CommandResult::Done);
    let left: Vec<&str> = store.kv_list("").iter().map(|e| e.key.as_str()).collect();
    assert_eq!(left, vec!["apple", "other"]);
    assert_eq!(store.kv_tombstone_count(), 2);
    assert_eq!(store.kv_prefix_index("app/"), 5);
    assert_eq!(store.kv_prefix_index("app/b"), 5);
    assert_eq!(store.kv_prefix_index("apple"), 3);
    assert_eq!(store.table_index(Table::Kv), 5);
    // Nothing under the prefix: no index moves.
    assert_eq!(store.apply(6, &delete_tree("app/")), CommandResult::Done);
    assert_eq!(store.table_index(Table::Kv), 5);
    // The empty prefix deletes everything.
    assert_eq!(store.apply(7, &delete_tree("")), CommandResult::Done);
    assert!(store.kv_list("").is_empty());
    assert_eq!(store.kv_prefix_index(""), 7);
    assert_eq!(store.kv_tombstone_count(), 4);
}

#[test]
fn reap_drops_only_old_tombstones() {
    let mut store = Store::new();
    store.apply(1, &set("a", "1", 0));
    store.apply(2, &set("b", "2", 0));
    store.apply(3, &delete("a"));
    store.apply(4, &delete("b"));
    assert_eq!(store.reap_tombstones(2), 0);
    assert_eq!(store.reap_tombstones(3), 1);
    // The reaped tombstone's index stays as the floor: the prefix index does not go back.
    assert_eq!(store.kv_prefix_index("a"), 3);
    assert_eq!(store.kv_prefix_index("b"), 4);
    assert_eq!(store.reap_tombstones(u64::MAX), 1);
    assert_eq!(store.kv_tombstone_count(), 0);
    // The table index is not a tombstone: it never goes back.
    assert_eq!(store.table_index(Table::Kv), 4);
}

#[test]
fn kv_list_is_sorted_and_prefix_bounded() {
    let mut store = Store::new();
    for (i, key) in ["b/2", "a", "b/1", "b", "c/1", "b0"].iter().enumerate() {
        store.apply(i as u64 + 1, &set(key, "v", 0));
    }
    let keys = |prefix: &str| -> Vec<String> {
        store
            .kv_list(prefix)
            .iter()
            .map(|e| e.key.clone())
            .collect()
    };
    assert_eq!(keys(""), vec!["a", "b", "b/1", "b/2", "b0", "c/1"]);
    assert_eq!(keys("b/"), vec!["b/1", "b/2"]);
    assert_eq!(keys("b"), vec!["b", "b/1", "b/2", "b0"]);
    assert_eq!(keys("zzz"), Vec::<String>::new());
}

#[test]
fn kv_keys_without_and_with_separator() {
    let mut store = Store::new();
    for (i, key) in [
        "web/bar",
        "web/foo",
        "web/subdir/x",
        "web/subdir/y/z",
        "web/",
        "webby",
        "x/y",
    ]
    .iter()
    .enumerate()
    {
        store.apply(i as u64 + 1, &set(key, "v", 0));
    }
    assert_eq!(
        store.kv_keys("web/", None),
        vec![
            "web/",
            "web/bar",
            "web/foo",
            "web/subdir/x",
            "web/subdir/y/z"
        ]
    );
    assert_eq!(
        store.kv_keys("web/", Some("/")),
        vec!["web/", "web/bar", "web/foo", "web/subdir/"]
    );
    assert_eq!(store.kv_keys("", Some("/")), vec!["web/", "webby", "x/"]);
    assert_eq!(store.kv_keys("web", Some("/")), vec!["web/", "webby"]);
    // An empty separator is no separator.
    assert_eq!(store.kv_keys("x", Some("")), vec!["x/y"]);
    // Multi-character separators cut just after the whole separator.
    assert_eq!(
        store.kv_keys("web/", Some("/y/")),
        vec![
            "web/",
            "web/bar",
            "web/foo",
            "web/subdir/x",
            "web/subdir/y/"
        ]
    );
    assert_eq!(store.kv_keys("nothing", Some("/")), Vec::<String>::new());
}

#[test]
fn kv_keys_handles_multibyte_keys() {
    let mut store = Store::new();
    store.apply(1, &set("é/ü/1", "v", 0));
    store.apply(2, &set("é/ü/2", "v", 0));
    store.apply(3, &set("é/ß", "v", 0));
    assert_eq!(store.kv_keys("é/", Some("/")), vec!["é/ß", "é/ü/"]);
    assert_eq!(store.kv_keys("é", Some("ü")), vec!["é/ß", "é/ü"]);
}

#[test]
fn an_out_of_order_index_never_moves_indexes_back() {
    let mut store = Store::new();
    store.apply(10, &set("a", "1", 0));
    store.apply(5, &set("b", "2", 0));
    store.apply_noop(3);
    assert_eq!(store.last_index(), 10);
    assert_eq!(store.table_index(Table::Kv), 10);
    assert_eq!(store.kv_prefix_index(""), 10);
}
