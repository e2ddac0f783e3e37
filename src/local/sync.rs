//! One anti-entropy pass: read what the catalog holds for this node, plan the writes
//! (`protocol::health::sync::plan`) and send them through the agent's endpoint, the
//! same path `/v1/catalog/register` takes (on a client agent it forwards to a server,
//! on a follower to the leader). Errors end the pass; the actor retries with backoff.

use actors::Api;
use protocol::api::{QueryOptions, Read, ReadData, RequestError, WriteRequest};
use protocol::health::sync::{plan, CatalogNodeView};
use protocol::store::{Check, Node, Service};

/// What one pass wrote, and the output-only changes it held back.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    pub writes: usize,
    pub deferred_outputs: Vec<String>,
}

pub async fn sync_once(
    api: &Api,
    node: &Node,
    services: &[Service],
    checks: &[Check],
    output_due: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<SyncOutcome, RequestError> {
    let catalog = read_catalog(api, &node.node).await?;
    let plan = plan(node, services, checks, &catalog, output_due);
    let mut writes = 0;
    for d in plan.deregisters {
        api.write(WriteRequest::Deregister(d)).await?;
        writes += 1;
    }
    for r in plan.registers {
        api.write(WriteRequest::Register(r)).await?;
        writes += 1;
    }
    Ok(SyncOutcome {
        writes,
        deferred_outputs: plan.deferred_outputs,
    })
}

async fn read_catalog(api: &Api, node: &str) -> Result<CatalogNodeView, RequestError> {
    let services = api
        .read(
            QueryOptions::default(),
            Read::CatalogNode {
                node: node.to_string(),
            },
        )
        .await?;
    let checks = api
        .read(
            QueryOptions::default(),
            Read::HealthNode {
                node: node.to_string(),
            },
        )
        .await?;
    let (node, services) = match services.data {
        ReadData::NodeServices(Some(found)) => (Some(found.node), found.services),
        ReadData::NodeServices(None) => (None, Vec::new()),
        _ => return Err(RequestError::unexpected_data()),
    };
    let ReadData::Checks(checks) = checks.data else {
        return Err(RequestError::unexpected_data());
    };
    Ok(CatalogNodeView {
        node,
        services,
        checks,
    })
}
