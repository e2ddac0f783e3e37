//! Exact-output tests of `Command::Restore`: the image's rows at the restore's index,
//! tombstones for what went away, and indexes that never go backwards.

use super::image::encode_image;
use super::*;

fn set(key: &str, value: &str) -> Command {
    Command::Kv(KvOp::Set {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 3,
    })
}

fn register(node: &str, service: &str) -> Command {
    Command::Register(RegisterRequest {
        node: Node {
            node: node.into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        },
        skip_node_update: false,
        service: Some(Service {
            id: service.into(),
            service: service.into(),
            port: 80,
            ..Service::default()
        }),
        checks: Vec::new(),
    })
}

fn restore(image: &Store) -> Command {
    Command::Restore {
        image: encode_image(image).expect("encodes"),
    }
}

#[test]
fn a_restore_replaces_everything_with_the_image_stamped_at_its_index() {
    // The backup: two keys and a service, at low indexes.
    let mut backup = Store::new();
    backup.apply(1, &set("app/a", "old-a"));
    backup.apply(2, &set("app/b", "old-b"));
    backup.apply(3, &register("n1", "web"));

    // Then the live store moved on: a changed key, a new key under a new prefix, a
    // deleted key, another service.
    let mut live = backup.clone();
    live.apply(10, &set("app/a", "new-a"));
    live.apply(11, &set("gone/x", "x"));
    live.apply(
        12,
        &Command::Kv(KvOp::Delete {
            key: "app/b".into(),
        }),
    );
    live.apply(13, &register("n2", "db"));

    assert_eq!(live.apply(20, &restore(&backup)), CommandResult::Done);
    let a = live.kv_get("app/a").expect("restored");
    assert_eq!(&*a.value, b"old-a");
    assert_eq!((a.flags, a.create_index, a.modify_index), (3, 20, 20));
    assert_eq!(&*live.kv_get("app/b").expect("restored").value, b"old-b");
    assert_eq!(live.kv_get("gone/x"), None);
    assert!(live.has_service("web"));
    assert!(!live.has_service("db"));
    assert_eq!(live.node("n2"), None);
    assert_eq!(live.node("n1").map(|n| n.modify_index), Some(20));

    // Every index a client could have seen is now at least 20: no index went back.
    assert_eq!(live.last_index(), 20);
    for table in [Table::Nodes, Table::Services, Table::Checks, Table::Kv] {
        assert_eq!(live.table_index(table), 20, "{table:?}");
    }
    assert_eq!(live.kv_prefix_index("gone/"), 20, "emptied prefix");
    assert_eq!(live.kv_prefix_index("app/"), 20);
    assert_eq!(live.service_index("web"), 20);
    assert_eq!(
        live.service_index("db"),
        20,
        "a vanished name reports the catalog"
    );

    // Later writes move on from there.
    live.apply(21, &set("app/a", "newer"));
    assert_eq!(live.kv_get("app/a").map(|e| e.modify_index), Some(21));
    assert_eq!(live.kv_prefix_index("app/"), 21);
}

#[test]
fn an_image_from_a_bigger_cluster_never_puts_rows_ahead_of_the_log() {
    let mut big = Store::new();
    big.apply(5000, &set("k", "v"));
    let mut fresh = Store::new();
    fresh.apply(7, &restore(&big));
    assert_eq!(fresh.kv_get("k").map(|e| e.modify_index), Some(7));
    fresh.apply(8, &set("k", "w"));
    assert_eq!(fresh.kv_get("k").map(|e| e.modify_index), Some(8));
    assert_eq!(fresh.table_index(Table::Kv), 8);
}

#[test]
fn a_bad_image_is_rejected_and_changes_nothing() {
    let mut live = Store::new();
    live.apply(1, &set("k", "v"));
    let before = live.clone();
    let mut image = encode_image(&before).unwrap();
    image.truncate(image.len() - 1);
    match live.apply(2, &Command::Restore { image }) {
        CommandResult::Rejected(text) => {
            assert!(text.starts_with("snapshot restore failed: "), "{text}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.kv_get("k"), before.kv_get("k"));
    assert_eq!(live.table_index(Table::Kv), 1);
}

#[test]
fn every_server_applying_the_same_restore_ends_equal() {
    let mut backup = Store::new();
    backup.apply(1, &set("a", "1"));
    let mut one = Store::new();
    one.apply(1, &set("b", "2"));
    let mut two = one.clone();
    let cmd = restore(&backup);
    one.apply(2, &cmd);
    two.apply(2, &cmd);
    assert_eq!(one, two);
    // And a snapshot of the result reads back as the same store.
    let image = encode_image(&one).unwrap();
    assert_eq!(image::store_from_image(&image, codec_limit()).unwrap(), one);
}

fn codec_limit() -> usize {
    crate::codec::MAX_DECODE_BYTES
}
