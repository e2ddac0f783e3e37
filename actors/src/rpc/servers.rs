//! The servers a client agent may forward to. Gossip sets it as members come and go;
//! every request reads it, so a read is one lock-free load.

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A shared, updatable list of server RPC addresses. Clones see the same list.
#[derive(Clone, Default)]
pub struct ServerList(Arc<ArcSwap<Vec<SocketAddr>>>);

impl ServerList {
    pub fn new(servers: Vec<SocketAddr>) -> ServerList {
        let list = ServerList::default();
        list.set(servers);
        list
    }

    /// Replace the list. Duplicates are dropped (first one kept), the order is kept.
    pub fn set(&self, servers: Vec<SocketAddr>) {
        let mut unique = Vec::with_capacity(servers.len());
        for server in servers {
            if !unique.contains(&server) {
                unique.push(server);
            }
        }
        self.0.store(Arc::new(unique));
    }

    /// The current list (a pointer copy).
    pub fn get(&self) -> Arc<Vec<SocketAddr>> {
        self.0.load_full()
    }

    pub fn is_empty(&self) -> bool {
        self.0.load().is_empty()
    }
}

impl std::fmt::Debug for ServerList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.load().iter()).finish()
    }
}
