//! The few HTTP calls a lock or semaphore makes (KV reads with blocking, KV writes with
//! `acquire`/`release`/`cas`, session create/renew/destroy), typed, with errors that
//! say whether Consul's Go client would retry them.

use super::super::api_client::{self, ApiClient};
use super::Cleanup;
use base64::Engine as _;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Largest KV answer a lock reads (a semaphore prefix lists one key per contender).
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No answer (connection refused, reset, timed out): Go's `url.Error` text.
    Transport(String),
    /// An answer with an unexpected status.
    Status(u16, String),
    /// A 200 whose body is not what the API promises.
    Malformed(String),
}

impl ApiError {
    /// Consul's `api.IsRetryableError`: network errors and 500s may pass (a leader
    /// election, a restarting agent); anything else is an answer.
    pub fn retryable(&self) -> bool {
        matches!(self, ApiError::Transport(_) | ApiError::Status(500, _))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Transport(text) | ApiError::Malformed(text) => f.write_str(text),
            ApiError::Status(status, body) => {
                f.write_str(&api_client::unexpected_status(*status, body))
            }
        }
    }
}

/// One entry of a `/v1/kv` answer (only what locks read).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct KvPair {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
    #[serde(rename = "Flags", default)]
    pub flags: u64,
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
    /// Absent (or empty) when nobody holds the key.
    #[serde(rename = "Session", default)]
    pub session: Option<String>,
}

impl KvPair {
    /// The holding session, `None` when the key is free.
    pub fn holder(&self) -> Option<&str> {
        self.session.as_deref().filter(|s| !s.is_empty())
    }

    /// The decoded value; `None` for a null value (Go's nil slice).
    pub fn value_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        match &self.value {
            None => Ok(None),
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(Some)
                .map_err(|e| format!("value of {} is not base64: {e}", self.key)),
        }
    }
}

/// How a read waits: a blocking query when `index` is non-zero, linearizable reads
/// when `consistent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Read {
    pub consistent: bool,
    pub index: u64,
    pub wait: Option<Duration>,
}

impl Read {
    fn params(&self) -> Vec<String> {
        let mut params = Vec::new();
        if self.consistent {
            params.push("consistent=".to_string());
        }
        if self.index > 0 {
            params.push(format!("index={}", self.index));
        }
        if let Some(wait) = self.wait {
            // At least a millisecond: `wait=0ms` would mean the server's default wait.
            params.push(format!("wait={}ms", wait.as_millis().max(1)));
        }
        params
    }
}

/// The agent calls of one lock, with the `-datacenter` parameter on each.
pub struct LockApi {
    client: ApiClient,
    dc: Option<String>,
}

impl LockApi {
    pub fn new(client: ApiClient, dc: Option<String>) -> LockApi {
        LockApi { client, dc }
    }

    fn path(&self, path: &str, mut params: Vec<String>) -> String {
        if let Some(dc) = &self.dc {
            params.push(format!("dc={}", api_client::escape(dc)));
        }
        api_client::with_query(path, &params)
    }

    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply, ApiError> {
        let reply = self
            .client
            .request(method, path, body, MAX_ANSWER_BYTES)
            .map_err(ApiError::Transport)?;
        Ok(Reply {
            status: reply.status,
            index: reply.index.unwrap_or(0),
            body: reply.body,
        })
    }

    /// `GET /v1/agent/self`: is the agent there at all (Consul's check before locking).
    pub fn agent_self(&self) -> Result<(), ApiError> {
        self.call("GET", "/v1/agent/self", None)?.ok().map(|_| ())
    }

    /// One key, `None` when absent, with the index to block on next.
    pub fn get(&self, key: &str, read: Read) -> Result<(Option<KvPair>, u64), ApiError> {
        let path = self.path(&api_client::kv_path(key), read.params());
        let reply = self.call("GET", &path, None)?;
        if reply.status == 404 {
            return Ok((None, reply.index));
        }
        let index = reply.index;
        let pairs: Vec<KvPair> = reply.json()?;
        Ok((pairs.into_iter().next(), index))
    }

    /// Every key under `prefix` (a raw prefix, as Consul's `kv.List`).
    pub fn list(&self, prefix: &str, read: Read) -> Result<(Vec<KvPair>, u64), ApiError> {
        let mut params = vec!["recurse=".to_string()];
        params.extend(read.params());
        let path = self.path(&api_client::kv_path(prefix), params);
        let reply = self.call("GET", &path, None)?;
        if reply.status == 404 {
            return Ok((Vec::new(), reply.index));
        }
        let index = reply.index;
        Ok((reply.json()?, index))
    }

    /// `PUT /v1/kv/<key>?<params>` with `value`: the server's `true`/`false`.
    pub fn put(&self, key: &str, params: Vec<String>, value: &[u8]) -> Result<bool, ApiError> {
        let path = self.path(&api_client::kv_path(key), params);
        self.call("PUT", &path, Some(value))?.bool()
    }

    /// `DELETE /v1/kv/<key>?<params>`: the server's `true`/`false`.
    pub fn delete(&self, key: &str, params: Vec<String>) -> Result<bool, ApiError> {
        let path = self.path(&api_client::kv_path(key), params);
        self.call("DELETE", &path, None)?.bool()
    }

    /// A cleanup's last step: delete `key` unless it changed since it was read at
    /// `modify_index` (`?cas`); `InUse` when it did (someone took it meanwhile). `what`
    /// names the key in the error ("lock", "semaphore").
    pub fn remove_unchanged(
        &self,
        key: &str,
        modify_index: u64,
        what: &str,
    ) -> Result<Cleanup, String> {
        let removed = self
            .delete(key, vec![format!("cas={modify_index}")])
            .map_err(|e| format!("failed to remove {what}: {e}"))?;
        Ok(if removed {
            Cleanup::Done
        } else {
            Cleanup::InUse
        })
    }

    /// `PUT /v1/session/create`: the new session's ID.
    pub fn create_session(
        &self,
        name: &str,
        ttl: Duration,
        behavior: &str,
    ) -> Result<String, ApiError> {
        let body = serde_json::json!({
            "Name": name,
            "TTL": format!("{}s", ttl.as_secs()),
            "Behavior": behavior,
        });
        let path = self.path("/v1/session/create", Vec::new());
        let reply = self.call("PUT", &path, Some(body.to_string().as_bytes()))?;
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let created: Created = reply.json()?;
        Ok(created.id)
    }

    /// `PUT /v1/session/renew/<id>`: the TTL the server now keeps (it may raise it),
    /// `None` when the session is gone (404).
    pub fn renew_session(&self, id: &str) -> Result<Option<Option<Duration>>, ApiError> {
        let path = self.path(
            &format!("/v1/session/renew/{}", api_client::escape(id)),
            Vec::new(),
        );
        let reply = self.call("PUT", &path, None)?;
        if reply.status == 404 {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Renewed {
            #[serde(rename = "TTL", default)]
            ttl: String,
        }
        let renewed: Vec<Renewed> = reply.json()?;
        Ok(Some(renewed.first().and_then(|r| {
            crate::duration::parse_go_duration(&r.ttl).filter(|d| !d.is_zero())
        })))
    }

    /// `PUT /v1/session/destroy/<id>` (idempotent).
    pub fn destroy_session(&self, id: &str) -> Result<(), ApiError> {
        let path = self.path(
            &format!("/v1/session/destroy/{}", api_client::escape(id)),
            Vec::new(),
        );
        self.call("PUT", &path, None)?.ok().map(|_| ())
    }
}

struct Reply {
    status: u16,
    index: u64,
    body: Vec<u8>,
}

impl Reply {
    fn ok(self) -> Result<Vec<u8>, ApiError> {
        match self.status {
            200 => Ok(self.body),
            status => Err(ApiError::Status(
                status,
                String::from_utf8_lossy(&self.body).into_owned(),
            )),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, ApiError> {
        let body = self.ok()?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Malformed(e.to_string()))
    }

    fn bool(self) -> Result<bool, ApiError> {
        let body = self.ok()?;
        Ok(String::from_utf8_lossy(&body).trim() == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_become_query_parameters() {
        assert!(Read::default().params().is_empty());
        let read = Read {
            consistent: true,
            index: 42,
            wait: Some(Duration::from_secs(15)),
        };
        assert_eq!(read.params(), ["consistent=", "index=42", "wait=15000ms"]);
        let short = Read {
            wait: Some(Duration::from_micros(10)),
            ..Read::default()
        };
        assert_eq!(short.params(), ["wait=1ms"]);
    }

    #[test]
    fn only_network_errors_and_500s_are_retried() {
        assert!(ApiError::Transport("refused".into()).retryable());
        assert!(ApiError::Status(500, "No cluster leader".into()).retryable());
        assert!(!ApiError::Status(403, "Permission denied".into()).retryable());
        assert!(!ApiError::Malformed("eof".into()).retryable());
        assert_eq!(
            ApiError::Status(500, "No cluster leader\n".into()).to_string(),
            "Unexpected response code: 500 (No cluster leader)"
        );
    }

    #[test]
    fn pairs_decode_with_and_without_a_holder() {
        let pairs: Vec<KvPair> = serde_json::from_str(
            r#"[{"Key":"a/.lock","Flags":3304740253564472344,"Value":null,"LockIndex":1,
                 "Session":"s1","CreateIndex":5,"ModifyIndex":7},
                {"Key":"a/b","Flags":0,"Value":"eA==","CreateIndex":5,"ModifyIndex":8}]"#,
        )
        .expect("decodes");
        assert_eq!(pairs[0].holder(), Some("s1"));
        assert_eq!(pairs[0].flags, 0x2ddc_cbc0_58a5_0c18);
        assert_eq!(pairs[0].value_bytes(), Ok(None));
        assert_eq!(pairs[1].holder(), None);
        assert_eq!(pairs[1].value_bytes(), Ok(Some(b"x".to_vec())));
        assert_eq!(pairs[1].modify_index, 8);
    }
}
