//! The agent's KV value limit (`limits.kv_max_value_size`), declared as the backend's largest cluster
//! document so that callers (and the conformance suite) know what the user's Consul accepts.

use std::time::Duration;

use hyper::Method;

use super::http::Conn;

/// Consul's documented default `limits.kv_max_value_size`: 512 KiB.
pub const DEFAULT_KV_MAX_VALUE_SIZE: usize = 512 * 1024;

/// The longest the agent is given to describe itself when the store connects.
const READ_BOUND: Duration = Duration::from_secs(2);

/// The agent's `DebugConfig.KVMaxValueSize` from `/v1/agent/self`, or the documented default when the agent
/// cannot say (unreachable, an ACL token without `agent:read`, or a version that does not expose it).
pub(crate) async fn kv_max_value_size(conn: &Conn) -> usize {
    let read = async {
        let reply = conn.raw(Method::GET, conn.url("/v1/agent/self", &[]), None).await.ok()?;
        if reply.status != 200 {
            return None;
        }
        parse_agent_self(&reply.body)
    };
    match tokio::time::timeout(READ_BOUND.min(conn.timeout), read).await {
        Ok(Some(size)) => size,
        _ => {
            tracing::debug!(
                agent = %conn.base,
                "cannot read the agent's kv_max_value_size; assuming Consul's default of {DEFAULT_KV_MAX_VALUE_SIZE} bytes"
            );
            DEFAULT_KV_MAX_VALUE_SIZE
        }
    }
}

/// `DebugConfig.KVMaxValueSize` of an `/v1/agent/self` answer.
fn parse_agent_self(body: &[u8]) -> Option<usize> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let size = doc.get("DebugConfig")?.get("KVMaxValueSize")?.as_u64()?;
    usize::try_from(size).ok().filter(|s| *s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_debug_config() {
        let body = br#"{"Config":{"Version":"1.15.4"},"DebugConfig":{"KVMaxValueSize":2097152,"TxnMaxReqLen":524288}}"#;
        assert_eq!(parse_agent_self(body), Some(2 * 1024 * 1024));
        assert_eq!(parse_agent_self(br#"{"Config":{}}"#), None);
        assert_eq!(parse_agent_self(br#"{"DebugConfig":{"KVMaxValueSize":"big"}}"#), None);
        assert_eq!(parse_agent_self(b"ACL not found"), None);
    }
}
