//! Consul's user events (`/v1/event/fire`, `/v1/event/list`, `consul event`), the pure
//! part: the event record and its gossip encoding, Consul's validation and filter rules
//! (`agent/user_event.go`), the ring of the last [`EVENT_RING_SIZE`] events an agent
//! accepted, and the list index derived from the newest event's ID
//! (`agent/event_endpoint.go`'s `uuidToUint64`).
//!
//! The event travels inside a SWIM user event (`swim::Update::UserEvent`) named
//! [`GOSSIP_NAME_PREFIX`]`+name`, whose payload is this record through the codec; the
//! SWIM layer gives the Lamport time and dedupes. As in serf, the size limit
//! ([`USER_EVENT_SIZE_LIMIT`]) counts the gossip name plus the encoded record, so the
//! room left for a payload is a little under 512 bytes minus the name and filters.

use crate::codec;
use serde::{Deserialize, Serialize};

/// The version of the record this agent fires and understands (Consul's
/// `userEventMaxVersion`).
pub const USER_EVENT_VERSION: u32 = 1;
/// How many accepted events an agent keeps for `/v1/event/list` (Consul's eventBuf).
pub const EVENT_RING_SIZE: usize = 256;
/// serf's default `UserEventSizeLimit`: gossip name + encoded event, in bytes.
pub const USER_EVENT_SIZE_LIMIT: usize = 512;
/// Consul names its serf user events `consul:event:<name>`.
pub const GOSSIP_NAME_PREFIX: &str = "consul:event:";
/// Largest encoded record accepted from gossip (serf's hard limit on user events).
pub const MAX_GOSSIP_EVENT_BYTES: usize = 9 * 1024;

/// One user event, as `/v1/event/fire` answers and `/v1/event/list` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEvent {
    pub id: String,
    pub name: String,
    pub payload: Vec<u8>,
    pub node_filter: String,
    pub service_filter: String,
    pub tag_filter: String,
    pub version: u32,
    /// The Lamport time gossip delivered it at (not encoded: the SWIM message carries it).
    #[serde(skip)]
    pub ltime: u64,
}

/// Why a fire was refused. Texts are Consul's (`validateUserEventParams`, serf).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FireError {
    #[error("User event missing name")]
    MissingName,
    #[error("Cannot provide tag filter without service filter")]
    TagWithoutService,
    #[error("Invalid node filter: {0}")]
    BadNodeFilter(String),
    #[error("Invalid service filter: {0}")]
    BadServiceFilter(String),
    #[error("Invalid tag filter: {0}")]
    BadTagFilter(String),
    #[error("user event exceeds configured limit of {limit} bytes before encoding")]
    TooLarge { limit: usize },
}

/// Consul's checks on an event before it is fired.
pub fn validate(event: &UserEvent) -> Result<(), FireError> {
    if event.name.is_empty() {
        return Err(FireError::MissingName);
    }
    if !event.tag_filter.is_empty() && event.service_filter.is_empty() {
        return Err(FireError::TagWithoutService);
    }
    let compile = |re: &str| {
        regex_lite::Regex::new(re)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if !event.node_filter.is_empty() {
        compile(&event.node_filter).map_err(FireError::BadNodeFilter)?;
    }
    if !event.service_filter.is_empty() {
        compile(&event.service_filter).map_err(FireError::BadServiceFilter)?;
    }
    if !event.tag_filter.is_empty() {
        compile(&event.tag_filter).map_err(FireError::BadTagFilter)?;
    }
    Ok(())
}

/// The SWIM user event for `event`: its gossip name and encoded payload, within
/// [`USER_EVENT_SIZE_LIMIT`] (name and payload together, as serf counts).
pub fn to_gossip(event: &UserEvent) -> Result<(String, Vec<u8>), FireError> {
    let name = format!("{GOSSIP_NAME_PREFIX}{}", event.name);
    let too_large = FireError::TooLarge {
        limit: USER_EVENT_SIZE_LIMIT,
    };
    let payload = codec::encode(event).map_err(|_| too_large.clone())?;
    if name.len() + payload.len() > USER_EVENT_SIZE_LIMIT {
        return Err(too_large);
    }
    Ok((name, payload))
}

/// The Consul event inside a SWIM user event, if it is one (other names, undecodable or
/// oversized payloads are not ours and are ignored).
pub fn from_gossip(name: &str, payload: &[u8], ltime: u64) -> Option<UserEvent> {
    name.strip_prefix(GOSSIP_NAME_PREFIX)?;
    let mut event: UserEvent = codec::decode(payload, MAX_GOSSIP_EVENT_BYTES).ok()?;
    event.ltime = ltime;
    Some(event)
}

/// One service of this agent, as the service and tag filters see it: Consul matches
/// the service filter against the local service's ID (its key in the agent's state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    pub id: String,
    pub tags: Vec<String>,
}

/// Whether this agent (`node_name`, `services`) accepts `event` (Consul's
/// `shouldProcessUserEvent`): the node filter must match the node name, and with a
/// service filter some service must match it (and, with a tag filter, have a matching
/// tag). Regexes are unanchored (Go's `MatchString`); one that does not compile rejects.
pub fn accepts(event: &UserEvent, node_name: &str, services: &[LocalService]) -> bool {
    let regex = |re: &str| regex_lite::Regex::new(re).ok();
    if !event.node_filter.is_empty() {
        match regex(&event.node_filter) {
            Some(re) if re.is_match(node_name) => {}
            _ => return false,
        }
    }
    if event.service_filter.is_empty() {
        return true;
    }
    let Some(service_re) = regex(&event.service_filter) else {
        return false;
    };
    let tag_re = match event.tag_filter.as_str() {
        "" => None,
        text => match regex(text) {
            Some(re) => Some(re),
            None => return false,
        },
    };
    services
        .iter()
        .filter(|s| service_re.is_match(&s.id))
        .any(|s| match &tag_re {
            None => true,
            Some(re) => s.tags.iter().any(|t| re.is_match(t)),
        })
}

/// Consul's list index from an event ID: the UUID's hex digits as two 64-bit halves,
/// XORed. Not monotonic; only "different from what the client saw" matters. An ID that
/// is not a UUID gives 0 (Consul would panic).
pub fn uuid_to_index(id: &str) -> u64 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return 0;
    }
    let (low, high) = hex.split_at(16);
    match (u64::from_str_radix(low, 16), u64::from_str_radix(high, 16)) {
        (Ok(l), Ok(h)) => l ^ h,
        _ => 0,
    }
}

/// The last [`EVENT_RING_SIZE`] events this agent accepted, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventRing {
    events: std::collections::VecDeque<UserEvent>,
}

impl EventRing {
    pub fn new() -> EventRing {
        EventRing::default()
    }

    /// Keep `event`, dropping the oldest beyond the ring's size.
    pub fn push(&mut self, event: UserEvent) {
        self.events.push_back(event);
        while self.events.len() > EVENT_RING_SIZE {
            self.events.pop_front();
        }
    }

    /// Events named `name` (all with an empty name), oldest first, and their list index:
    /// the newest one's [`uuid_to_index`], or 1 with none (Consul's guard against a hot
    /// loop of blocking queries).
    pub fn list(&self, name: &str) -> (Vec<UserEvent>, u64) {
        let events: Vec<UserEvent> = self
            .events
            .iter()
            .filter(|e| name.is_empty() || e.name == name)
            .cloned()
            .collect();
        let index = events.last().map_or(1, |e| uuid_to_index(&e.id));
        (events, index)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> UserEvent {
        UserEvent {
            id: "b54fe110-7af5-cafc-d1fb-afc8ba432b1c".into(),
            name: name.into(),
            payload: Vec::new(),
            node_filter: String::new(),
            service_filter: String::new(),
            tag_filter: String::new(),
            version: USER_EVENT_VERSION,
            ltime: 0,
        }
    }

    fn svc(id: &str, tags: &[&str]) -> LocalService {
        LocalService {
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn validation_texts_are_consuls() {
        let mut e = event("");
        assert_eq!(
            validate(&e).unwrap_err().to_string(),
            "User event missing name"
        );
        e.name = "deploy".into();
        e.tag_filter = "v1".into();
        assert_eq!(
            validate(&e).unwrap_err().to_string(),
            "Cannot provide tag filter without service filter"
        );
        e.tag_filter.clear();
        e.node_filter = "(".into();
        assert!(validate(&e)
            .unwrap_err()
            .to_string()
            .starts_with("Invalid node filter: "));
        e.node_filter = "web-.*".into();
        assert_eq!(validate(&e), Ok(()));
    }

    #[test]
    fn filters_apply_to_the_node_name_service_ids_and_tags() {
        let services = [svc("web-1", &["v1", "blue"]), svc("db", &["primary"])];
        let mut e = event("deploy");
        assert!(accepts(&e, "node-a", &services), "no filter: everyone");
        e.node_filter = "^node-b$".into();
        assert!(!accepts(&e, "node-a", &services));
        e.node_filter = "node".into();
        assert!(
            accepts(&e, "node-a", &services),
            "unanchored, like Go's MatchString"
        );
        e.service_filter = "web".into();
        assert!(accepts(&e, "node-a", &services));
        assert!(!accepts(&e, "node-a", &[svc("db", &[])]));
        e.tag_filter = "^gre".into();
        assert!(!accepts(&e, "node-a", &services), "web has no matching tag");
        e.tag_filter = "blu".into();
        assert!(accepts(&e, "node-a", &services));
        e.tag_filter = "primary".into();
        assert!(
            !accepts(&e, "node-a", &services),
            "the tag must be on a matching service"
        );
        e.service_filter = "(".into();
        assert!(!accepts(&e, "node-a", &services), "a broken regex rejects");
    }

    #[test]
    fn gossip_round_trip_and_the_size_limit() {
        let mut e = event("deploy");
        e.payload = b"hello".to_vec();
        e.service_filter = "web".into();
        let (name, payload) = to_gossip(&e).expect("small");
        assert_eq!(name, "consul:event:deploy");
        let back = from_gossip(&name, &payload, 42).expect("ours");
        assert_eq!(back.ltime, 42);
        assert_eq!(UserEvent { ltime: 0, ..back }, e);
        assert_eq!(from_gossip("other", &payload, 1), None);
        assert_eq!(from_gossip(&name, b"junk", 1), None);
        e.payload = vec![b'x'; 512];
        assert_eq!(
            to_gossip(&e).unwrap_err().to_string(),
            "user event exceeds configured limit of 512 bytes before encoding"
        );
        e.payload = vec![b'x'; 380];
        assert!(to_gossip(&e).is_ok(), "a few hundred bytes of payload fit");
    }

    #[test]
    fn the_list_index_is_consuls_uuid_xor() {
        // lower = "b54fe1107af5cafc", upper = "d1fbafc8ba432b1c"
        assert_eq!(
            uuid_to_index("b54fe110-7af5-cafc-d1fb-afc8ba432b1c"),
            0xb54fe1107af5cafc ^ 0xd1fbafc8ba432b1c
        );
        assert_eq!(uuid_to_index("nope"), 0);
    }

    #[test]
    fn the_ring_keeps_the_last_256_and_filters_by_name() {
        let mut ring = EventRing::new();
        assert_eq!(ring.list(""), (Vec::new(), 1));
        for i in 0..300u64 {
            let mut e = event(if i % 2 == 0 { "even" } else { "odd" });
            e.ltime = i;
            e.id = format!("00000000-0000-0000-0000-{i:012}");
            ring.push(e);
        }
        assert_eq!(ring.len(), EVENT_RING_SIZE);
        let (all, index) = ring.list("");
        assert_eq!(all.first().map(|e| e.ltime), Some(44));
        assert_eq!(all.last().map(|e| e.ltime), Some(299));
        assert_eq!(index, uuid_to_index("00000000-0000-0000-0000-000000000299"));
        let (odd, _) = ring.list("odd");
        assert_eq!(odd.len(), 128);
        assert!(odd.iter().all(|e| e.name == "odd"));
    }
}
