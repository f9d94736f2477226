//! The keeper HTTP API in scenarios: flags giving a keeper an API on a free port, and requests to it.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use stolon_conformance::servers::free_port;
use stolon_core::keeper::api::{ApiClient, ClientOptions};

use super::R;
use super::wait::wait_for;

/// A keeper's API on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct KeeperApi {
    /// The port.
    pub port: u16,
    /// `http://127.0.0.1:<port>`, as the keeper publishes it in `apiURL`.
    pub url: String,
}

impl KeeperApi {
    /// A free port for a keeper API.
    pub fn new() -> KeeperApi {
        let port = free_port();
        KeeperApi { port, url: format!("http://127.0.0.1:{port}") }
    }

    /// The keeper flags serving it.
    pub fn flags(&self) -> Vec<String> {
        vec!["--api-listen-address".into(), format!("127.0.0.1:{}", self.port)]
    }

    /// `GET <path>`: the status code and the body as text.
    pub async fn get_text(&self, path: &str) -> R<(u16, String)> {
        let options = ClientOptions { ca_file: None, basic_auth: None, timeout: Duration::from_secs(10) };
        let r = ApiClient::new(&options)?.get(&format!("{}{path}", self.url)).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// `GET <path>`: the status code and the JSON body.
    pub async fn get(&self, path: &str) -> R<(u16, Value)> {
        let (status, text) = self.get_text(path).await?;
        let body = serde_json::from_str(&text).with_context(|| format!("GET {path}: the body is not JSON: {text}"))?;
        Ok((status, body))
    }

    /// Waits until every `(path, status)` of `expected` holds in one round of requests (sent at once);
    /// returns the bodies in order.
    pub async fn wait_codes(&self, who: &str, expected: &[(&str, u16)], limit: Duration) -> R<Vec<Value>> {
        wait_for(&format!("{who}'s API answering {expected:?}"), limit, || async move {
            let answers = futures::future::join_all(expected.iter().map(|(path, _)| self.get(path))).await;
            let mut bodies = Vec::new();
            let mut wrong = Vec::new();
            for ((path, want), answer) in expected.iter().zip(answers) {
                let (got, body) = answer?;
                if got != *want {
                    wrong.push(format!("{path}: {got} ({})", body["check"]["reason"]));
                }
                bodies.push(body);
            }
            if wrong.is_empty() { Ok(Some(bodies)) } else { Err(anyhow::anyhow!("{}", wrong.join("; "))) }
        })
        .await
    }
}
