//! The documents stolon 0.17 wrote (`stolon-core/tests/fixtures/stolon-0.17/`), put into a test etcd v3 under
//! their own keys as stolon's components left them, and a cluster under test moved to another cluster name
//! of the same store (to run our components on those documents).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use etcd_client::{Client, PutOptions};
use serde_json::Value;
use stolon_core::store::ClusterStore;

use super::R;
use super::cluster::TestCluster;
use super::store::Backend;

/// The directory of the stolon 0.17 documents (one copy, shared with stolon-core's tests).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stolon-core/tests/fixtures/stolon-0.17")
}

/// The bytes of fixture `name`.
pub fn fixture(name: &str) -> R<Vec<u8>> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A `{"key", "value"}` fixture: the store key stolon wrote and the document.
pub fn record(name: &str) -> R<(String, Value)> {
    let v: Value = serde_json::from_slice(&fixture(name)?).with_context(|| format!("{name} is not JSON"))?;
    let key = v["key"].as_str().with_context(|| format!("{name}: no key"))?.to_string();
    Ok((key, v["value"].clone()))
}

/// The cluster name of the fixtures' keys (`<prefix>/<cluster>/clusterdata`).
pub fn cluster_name() -> R<String> {
    let (key, _) = record("clusterdata.json")?;
    let name = key.strip_suffix("/clusterdata").and_then(|k| k.rsplit('/').next()).context("clusterdata key")?;
    Ok(name.to_string())
}

/// What the documents state about one DB's instance and must match the instance a test runs for it: its
/// port and its system identifier (stolon's documents describe instances that ran on the machine that made
/// the fixtures).
pub struct Instance {
    /// The PostgreSQL port.
    pub port: u16,
    /// The system identifier from `pg_control`.
    pub system_id: String,
}

fn set_instance(status: &mut Value, instance: &Instance, system_id_key: &str) {
    status["port"] = Value::String(instance.port.to_string());
    status[system_id_key] = Value::String(instance.system_id.clone());
}

/// Writes every stolon 0.17 document into the etcd v3 server at `endpoint` (`host:port`) under the key stolon
/// wrote it at, with the instance facts of the DBs in `instances` (by DB UID) replaced and the members of
/// `spec_changes` set in the cluster spec. Member records and the election key are attached to a lease of
/// `ttl`, as stolon's are: they vanish `ttl` later, as they do once stolon's components are stopped.
pub async fn seed_etcdv3(
    endpoint: &str,
    instances: &BTreeMap<String, Instance>,
    spec_changes: &Value,
    ttl: Duration,
) -> R<()> {
    let mut client = Client::connect([endpoint], None).await.context("connecting to etcd")?;
    let lease = client.lease_grant(ttl.as_secs() as i64, None).await?.id();
    let leased = || Some(PutOptions::new().with_lease(lease));

    let (key, mut cd) = record("clusterdata.json")?;
    for (k, v) in spec_changes.as_object().context("spec changes are an object")? {
        cd["cluster"]["spec"][k] = v.clone();
    }
    for (uid, instance) in instances {
        let status = cd["dbs"].get_mut(uid).with_context(|| format!("no DB {uid} in the fixture"))?;
        set_instance(&mut status["status"], instance, "systemdID");
    }
    client.put(key, serde_json::to_vec(&cd)?, None).await?;

    let (key, mut info) = record("keepers-info.json")?;
    let db = info["postgresState"]["uid"].as_str().unwrap_or_default().to_string();
    if let Some(instance) = instances.get(&db) {
        set_instance(&mut info["postgresState"], instance, "systemID");
    }
    client.put(key, serde_json::to_vec(&info)?, leased()).await?;
    for name in ["sentinels-info.json", "proxies-info.json"] {
        let (key, value) = record(name)?;
        client.put(key, serde_json::to_vec(&value)?, leased()).await?;
    }
    let (key, leader) = record("sentinel-leader.json")?;
    let leader = leader.as_str().context("the leader record is a string")?.to_string();
    client.put(key, leader, leased()).await?;
    Ok(())
}

impl TestCluster {
    /// Points this cluster's client, keepers, sentinels and proxies at cluster `name` of the same store
    /// (effective at their next start). KV stores only: on Kubernetes the pods carry the cluster name.
    pub async fn rename(&mut self, name: &str) -> R<()> {
        ensure!(self.store.backend() != Backend::Kubernetes, "rename: pods carry their cluster name");
        self.name = name.to_string();
        self.client = ClusterStore::new(stolon_core::stolon_store::connect(&self.store.client_config(name)).await?);
        for k in self.keepers.values_mut() {
            k.proc.set_arg("--cluster-name", name);
        }
        for s in &mut self.sentinels {
            s.set_arg("--cluster-name", name);
        }
        for p in &mut self.proxies {
            p.proc.set_arg("--cluster-name", name);
        }
        Ok(())
    }

    /// The store's first endpoint as `host:port`.
    pub fn store_endpoint(&self) -> R<String> {
        let config = self.store.client_config(&self.name);
        let e = config.endpoints.first().context("the store has no endpoint")?;
        Ok(format!("{}:{}", e.host, e.port))
    }
}
