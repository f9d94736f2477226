//! Checks specific to Kubernetes: the exact objects stolon uses, leadership shared with client-go candidates,
//! compare-and-swap while the leader record moves the ConfigMap's resourceVersion, and error messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use stolon_conformance::servers::KubeFactory;
use stolon_conformance::{StoreFactory, unique_cluster_name};
use stolon_store::kubernetes::{CLUSTERDATA_ANNOTATION, LEADER_ANNOTATION, STATUS_ANNOTATION, resource_name};
use stolon_store::{MemberKind, StoreError, WatchEvent};

fn configmaps(f: &KubeFactory) -> Api<ConfigMap> {
    Api::namespaced(f.admin().clone(), f.namespace())
}

async fn annotation(f: &KubeFactory, cluster: &str, key: &str) -> anyhow::Result<Option<String>> {
    let cm = configmaps(f).get_opt(&resource_name(cluster)).await?;
    Ok(cm.and_then(|cm| cm.metadata.annotations).and_then(|mut a| a.remove(key)))
}

async fn leader_record(f: &KubeFactory, cluster: &str) -> anyhow::Result<Value> {
    let text = annotation(f, cluster, LEADER_ANNOTATION).await?.context("no leader record")?;
    Ok(serde_json::from_str(&text)?)
}

/// RFC 3339 in UTC with whole seconds, as client-go's metav1.Time writes it.
fn is_go_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 20
            && s.ends_with('Z')
            && s.as_bytes()[10] == b'T'
            && s.parse::<k8s_openapi::jiff::Timestamp>().is_ok()
    })
}

fn now_go() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn stolon_layout(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("layout");
    let store = f.open(&cluster).await?;
    let doc = br#"{"formatVersion":1}"#;
    let rev = store.put_cluster_data_cas(doc, None).await?;
    let cm =
        configmaps(&f).get(&format!("stolon-cluster-{cluster}")).await.context("ConfigMap stolon-cluster-<cluster>")?;
    ensure!(cm.metadata.resource_version.as_deref() == Some(rev.as_str()), "revision is not the resourceVersion");
    ensure!(cm.data.is_none(), "the ConfigMap's data must stay unused");
    ensure!(annotation(&f, &cluster, CLUSTERDATA_ANNOTATION).await?.as_deref() == Some(r#"{"formatVersion":1}"#));

    // Member record: the stolon-status annotation of the member's own pod.
    let pod = format!("{cluster}-keeper-0");
    let keeper = f.open_member(&cluster, MemberKind::Keeper, &pod).await?;
    keeper.set_member(MemberKind::Keeper, "keeper0", br#"{"uid":"keeper0"}"#, Duration::from_secs(30)).await?;
    let p = Api::<Pod>::namespaced(f.admin().clone(), f.namespace()).get(&pod).await?;
    let status = p.metadata.annotations.and_then(|mut a| a.remove(STATUS_ANNOTATION));
    ensure!(status.as_deref() == Some(r#"{"uid":"keeper0"}"#), "pod annotation stolon-status: {status:?}");

    // Leader record in client-go's format, next to the document; renewals are not document changes.
    let mut watch = store.watch_cluster_data(Some(&rev)).await?;
    let lead = store.campaign("sentinel-a", Duration::from_secs(3)).await?;
    let rec = leader_record(&f, &cluster).await?;
    let fields: Vec<&str> = rec.as_object().context("record is not an object")?.keys().map(String::as_str).collect();
    ensure!(
        fields == ["acquireTime", "holderIdentity", "leaderTransitions", "leaseDurationSeconds", "renewTime"],
        "record fields {fields:?}"
    );
    ensure!(rec["holderIdentity"] == "sentinel-a" && rec["leaseDurationSeconds"] == 3, "record {rec}");
    ensure!(is_go_time(&rec["acquireTime"]) && is_go_time(&rec["renewTime"]), "times in {rec}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // several renewals
    ensure!(leader_record(&f, &cluster).await? != rec, "the leader record was not renewed");
    ensure!(annotation(&f, &cluster, CLUSTERDATA_ANNOTATION).await?.as_deref() == Some(r#"{"formatVersion":1}"#));
    let current = store.get_cluster_data().await?.context("document")?;
    let rev2 = store.put_cluster_data_cas(b"{}", Some(&current.revision)).await?;
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(d)))) if d.value == b"{}" && d.revision == rev2 => {}
        other => bail!("the watch must skip leader renewals and deliver the document write, got {other:?}"),
    }

    // Resigning releases the record as client-go does.
    lead.resign().await?;
    let rec = leader_record(&f, &cluster).await?;
    ensure!(rec["holderIdentity"] == "" && rec["leaseDurationSeconds"] == 1, "released record {rec}");
    ensure!(rec["leaderTransitions"] == 0, "transitions kept on release: {rec}");
    Ok(())
}

pub async fn cas_across_leader_renewals(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("cas-renewals");
    let store = f.open(&cluster).await?;
    let other = f.open(&cluster).await?;
    let rev = store.put_cluster_data_cas(b"one", None).await?;
    let lead = other.campaign("sentinel-b", Duration::from_secs(3)).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let moved = configmaps(&f).get(&resource_name(&cluster)).await?.metadata.resource_version;
    ensure!(moved.as_deref() != Some(rev.as_str()), "the leader record did not move the resourceVersion");
    // The document did not change since `rev`: the CAS goes through although the ConfigMap moved.
    let rev2 = store.put_cluster_data_cas(b"two", Some(&rev)).await.context("CAS after leader renewals")?;
    // It changed since `rev`: conflict.
    match store.put_cluster_data_cas(b"stale", Some(&rev)).await {
        Err(StoreError::Conflict { .. }) => {}
        other => bail!("CAS on a revision older than a document change: expected a conflict, got {other:?}"),
    }
    ensure!(store.get_cluster_data().await?.context("document")?.value == b"two");
    store.put_cluster_data_cas(b"three", Some(&rev2)).await?;
    ensure!(lead.is_leader(), "leadership lost during document writes: {:?}", lead.state());
    lead.resign().await?;
    Ok(())
}

pub async fn create_only_next_to_leader_record(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("create-next-to-leader");
    let store = f.open(&cluster).await?;
    // A sentinel elected before anybody wrote a document leaves a ConfigMap holding only the leader record.
    let lead = store.campaign("sentinel-c", Duration::from_secs(3)).await?;
    ensure!(store.get_cluster_data().await?.is_none(), "a leader record is not a document");
    store.put_cluster_data_cas(b"first", None).await.context("create-only put next to the leader record")?;
    match store.put_cluster_data_cas(b"second", None).await {
        Err(StoreError::Conflict { .. }) => {}
        other => bail!("second create-only put: expected a conflict, got {other:?}"),
    }
    ensure!(
        leader_record(&f, &cluster).await?["holderIdentity"] == "sentinel-c",
        "the document write clobbered the leader record"
    );
    lead.resign().await?;
    Ok(())
}

pub async fn client_go_leader_is_respected(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("client-go-leader");
    let name = resource_name(&cluster);
    let lease = 4;
    let record = |transitions: i64| {
        json!({"holderIdentity": "go-sentinel", "leaseDurationSeconds": lease, "acquireTime": now_go(),
               "renewTime": now_go(), "leaderTransitions": transitions})
        .to_string()
    };
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": { LEADER_ANNOTATION: record(5) } }
    }))?;
    configmaps(&f).create(&PostParams::default(), &cm).await?;
    let store = f.open(&cluster).await?;
    ensure!(store.leader().await?.as_deref() == Some("go-sentinel"), "leader() must name the Go sentinel");

    // The Go sentinel renews every second for 6 s (longer than its lease): we must not take over meanwhile.
    let campaign = {
        let store = store.clone();
        tokio::spawn(async move { store.campaign("rust-sentinel", Duration::from_secs(lease as u64)).await })
    };
    let mut last_renew = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(!campaign.is_finished(), "elected while the client-go leader kept renewing");
        let patch = json!({ "metadata": { "annotations": { LEADER_ANNOTATION: record(5) } } });
        configmaps(&f).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        last_renew = Instant::now();
    }
    // The Go sentinel stops (crash): we take over once its record stayed unchanged for its lease.
    let lead = tokio::time::timeout(Duration::from_secs(lease as u64 + 5), campaign)
        .await
        .context("not elected after the client-go leader stopped renewing")???;
    let waited = last_renew.elapsed();
    ensure!(waited >= Duration::from_secs(lease as u64 - 1), "took over after {waited:?}, before the lease ran out");
    let rec = leader_record(&f, &cluster).await?;
    ensure!(rec["holderIdentity"] == "rust-sentinel" && rec["leaderTransitions"] == 6, "record {rec}");

    // A client-go candidate sees our record change at least every retry period, so it keeps away.
    let before = rec["renewTime"].clone();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let after = leader_record(&f, &cluster).await?;
    ensure!(after["renewTime"] != before && after["holderIdentity"] == "rust-sentinel", "not renewed: {after}");
    lead.resign().await?;
    Ok(())
}

pub async fn document_below_annotation_limit(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let store = f.open(&unique_cluster_name("doc-limit")).await?;
    let value: Vec<u8> = (0..200 * 1024).map(|i: usize| b'a' + (i % 26) as u8).collect();
    let rev = store.put_cluster_data_cas(&value, None).await.context("writing 200 KiB")?;
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value == value && doc.revision == rev, "200 KiB document corrupted");
    let too_big = vec![b'x'; 300 * 1024];
    match store.put_cluster_data_cas(&too_big, Some(&rev)).await {
        Err(StoreError::InvalidData { reason, .. }) if reason.contains("262144") => Ok(()),
        other => bail!("a 300 KiB document must be refused with the annotation limit, got {other:?}"),
    }
}

pub async fn forbidden_names_verb_and_resource(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    // A namespace where the stolon-test user was granted nothing.
    let bare = format!("stolon-bare-{}", std::process::id());
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": bare } }))?;
    Api::<Namespace>::all(f.admin().clone()).create(&PostParams::default(), &ns).await?;
    let mut config = f.config("forbidden", Some("pod-x"));
    config.kube.namespace = Some(bare.clone());
    let store = stolon_store::connect(&config).await?;
    match store.get_cluster_data().await {
        Err(StoreError::Auth(m)) if m.contains(&format!("cannot get configmaps in namespace {bare}")) => {}
        other => bail!("expected a permission error naming get configmaps, got {other:?}"),
    }
    match store.set_member(MemberKind::Proxy, "p", b"{}", Duration::from_secs(30)).await {
        Err(StoreError::Auth(m)) if m.contains(&format!("cannot patch pods in namespace {bare}")) => {}
        other => bail!("expected a permission error naming patch pods, got {other:?}"),
    }
    match store.list_members(MemberKind::Keeper).await {
        Err(StoreError::Auth(m)) if m.contains(&format!("cannot list pods in namespace {bare}")) => {}
        other => bail!("expected a permission error naming list pods, got {other:?}"),
    }
    Ok(())
}

pub async fn missing_pod_name(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let config = f.config(&unique_cluster_name("no-pod"), None);
    let e = stolon_store::kubernetes::require_pod_name(&config).err().context("require_pod_name must fail")?;
    ensure!(e.to_string().contains("POD_NAME"), "{e}");
    let store = stolon_store::connect(&config).await?;
    match store.set_member(MemberKind::Sentinel, "s", b"{}", Duration::from_secs(30)).await {
        Err(StoreError::Config(m)) if m.contains("POD_NAME") => {}
        other => bail!("set_member without POD_NAME: expected a configuration error, got {other:?}"),
    }
    // Reading needs no pod (stolonctl).
    store.get_cluster_data().await?;
    store.list_members(MemberKind::Keeper).await?;
    Ok(())
}

pub async fn watch_outlives_server_side_timeout(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let store = f.open(&unique_cluster_name("watch-reopen")).await?;
    let rev = store.put_cluster_data_cas(b"before", None).await?;
    let mut watch = store.watch_cluster_data(Some(&rev)).await?;
    // The API server ends each watch request after 30 s; the stream reopens it without the caller noticing.
    match tokio::time::timeout(Duration::from_secs(40), watch.next()).await {
        Err(_) => {}
        Ok(other) => bail!("nothing changed, yet the watch yielded {other:?}"),
    }
    let rev2 = store.put_cluster_data_cas(b"after", Some(&rev)).await?;
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(d)))) if d.value == b"after" && d.revision == rev2 => Ok(()),
        other => bail!("after the server-side timeout: expected the new write, got {other:?}"),
    }
}

/// Member labels are labels of the member's own pod: set, changed and removed by the member, RBAC allowing it;
/// the labels the members are listed by cannot be changed that way.
pub async fn member_labels(f: Arc<KubeFactory>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("labels");
    let pod = format!("{cluster}-keeper-0");
    let keeper = f.open_member(&cluster, MemberKind::Keeper, &pod).await?;
    keeper.set_member(MemberKind::Keeper, "keeper0", br#"{"uid":"keeper0"}"#, Duration::from_secs(30)).await?;
    let role = |labels: &std::collections::BTreeMap<String, String>| labels.get("stolon-role").cloned();
    ensure!(keeper.set_member_labels(&[("stolon-role", Some("master"))]).await?, "kubernetes keeps member labels");
    ensure!(role(&f.pod_labels(&pod).await?).as_deref() == Some("master"));
    keeper.set_member_labels(&[("stolon-role", Some("standby"))]).await?;
    ensure!(role(&f.pod_labels(&pod).await?).as_deref() == Some("standby"));
    keeper.set_member_labels(&[("stolon-role", None)]).await?;
    ensure!(role(&f.pod_labels(&pod).await?).is_none(), "the label is removed");
    match keeper.set_member_labels(&[("component", Some("other"))]).await {
        Err(StoreError::InvalidData { reason, .. }) if reason.contains("membership") => {}
        other => bail!("changing a membership label: expected an invalid-data error, got {other:?}"),
    }
    let members = keeper.list_members(MemberKind::Keeper).await?;
    ensure!(members.len() == 1 && members[0].id == pod, "still listed as a keeper: {members:?}");
    Ok(())
}
