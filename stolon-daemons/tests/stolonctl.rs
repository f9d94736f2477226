//! stolonctl against a real etcd (v3 API): every subcommand runs as the real binary, and the retry on
//! concurrent writers is checked through the library with a store that injects a competing write.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use stolon_core::cluster::{ClusterData, ProxyInfo, SentinelInfo};
use stolon_core::ctl::{self, CtlError, SpecUpdate};
use stolon_core::stolon_store::{
    Capabilities, Document, Election, Leadership, MemberKind, MemberRecord, MemberWatch, Revision, Store, StoreBackend,
    StoreResult, WatchStream,
};
use stolon_core::store::ClusterStore;

#[path = "stolonctl/fixture.rs"]
mod fixture;
use fixture::*;

const EXPECTED_STATUS_TEXT: &str = "\
=== Active sentinels ===

ID\t\tLEADER
0a1b2c3d\tfalse
5e6f7a8b\ttrue
9c8d7e6f\tfalse

=== Active proxies ===

ID
1a2b3c4d
5e6f7a8b

=== Keepers ===

UID\tHEALTHY\tPG LISTENADDRESS\tPG HEALTHY\tPG WANTEDGENERATION\tPG CURRENTGENERATION
keeper0\ttrue\t10.0.0.10:5432\t\ttrue\t\t7\t\t\t7\t
keeper1\ttrue\t10.0.0.11:5432\t\ttrue\t\t4\t\t\t4\t
keeper2\tfalse\t10.0.0.12:5433\t\tfalse\t\t2\t\t\t1\t
keeper3\ttrue\t(no db assigned)\tfalse\t\t0\t\t\t0\t

=== Cluster Info ===

Master Keeper: keeper0

===== Keepers/DB tree =====

keeper0 (master)
├─keeper1
└─keeper2

";

fn expected_status_json() -> String {
    let sentinel =
        |uid: &str, leader: bool| format!("\t\t{{\n\t\t\t\"uid\": \"{uid}\",\n\t\t\t\"leader\": {leader}\n\t\t}}");
    let proxy = |uid: &str, g: i64| format!("\t\t{{\n\t\t\t\"uid\": \"{uid}\",\n\t\t\t\"generation\": {g}\n\t\t}}");
    let keeper = |uid: &str, addr: &str, healthy: bool, pg_healthy: bool, wanted: i64, current: i64| {
        format!(
            "\t\t{{\n\t\t\t\"uid\": \"{uid}\",\n\t\t\t\"listen_address\": \"{addr}\",\n\t\t\t\"healthy\": {healthy},\n\
             \t\t\t\"pg_healthy\": {pg_healthy},\n\t\t\t\"pg_wanted_generation\": {wanted},\n\
             \t\t\t\"pg_current_generation\": {current}\n\t\t}}"
        )
    };
    let sentinels = [sentinel("0a1b2c3d", false), sentinel("5e6f7a8b", true), sentinel("9c8d7e6f", false)];
    let proxies = [proxy("1a2b3c4d", 5), proxy("5e6f7a8b", 4)];
    let keepers = [
        keeper("keeper0", "10.0.0.10:5432", true, true, 7, 7),
        keeper("keeper1", "10.0.0.11:5432", true, true, 4, 4),
        keeper("keeper2", "10.0.0.12:5433", false, false, 2, 1),
        keeper("keeper3", "(no db assigned)", true, false, 0, 0),
    ];
    format!(
        "{{\n\t\"sentinels\": [\n{}\n\t],\n\t\"proxies\": [\n{}\n\t],\n\t\"keepers\": [\n{}\n\t],\n\
         \t\"cluster\": {{\n\t\t\"available\": true,\n\t\t\"master_keeper_uid\": \"keeper0\",\n\
         \t\t\"master_db_uid\": \"a1b2c3d4\"\n\t}}\n}}\n",
        sentinels.join(",\n"),
        proxies.join(",\n"),
        keepers.join(",\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_text_and_json_for_a_realistic_cluster() {
    let f = Fixture::new("status").await;
    f.write(&realistic_cluster()).await;
    let ttl = Duration::from_secs(60);
    for uid in ["9c8d7e6f", "0a1b2c3d", "5e6f7a8b"] {
        f.store.set_sentinel_info(&SentinelInfo { uid: uid.into() }, ttl).await.unwrap();
    }
    for (uid, generation) in [("5e6f7a8b", 4), ("1a2b3c4d", 5)] {
        let info = ProxyInfo { info_uid: "x".into(), uid: uid.into(), generation, ..ProxyInfo::default() };
        f.store.set_proxy_info(&info, ttl).await.unwrap();
    }
    let leadership: Leadership = f.raw.campaign("5e6f7a8b", Duration::from_secs(20)).await.expect("elected");
    assert!(leadership.is_leader());

    let text = f.ctl(&["status"]).await;
    assert_ok(&text);
    assert_eq!(stdout(&text), EXPECTED_STATUS_TEXT);
    // Flags after the subcommand work too, as with stolon's persistent flags.
    let mut args = vec!["status".to_string(), "--format".into(), "text".into()];
    args.extend(f.store_args());
    let after = run(&[], &args.iter().map(String::as_str).collect::<Vec<_>>(), None, &[]).await;
    assert_eq!(stdout(&after), EXPECTED_STATUS_TEXT);

    let js = f.ctl(&["status", "--format", "json"]).await;
    assert_ok(&js);
    assert_eq!(stdout(&js), expected_status_json());
    let parsed: Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(parsed["cluster"]["master_db_uid"], "a1b2c3d4");
    let short = f.ctl(&["status", "-f", "json"]).await;
    assert_eq!(stdout(&short), expected_status_json());
    let env = f.ctl_env(&["status"], &[("STOLONCTL_FORMAT", "json")]).await;
    assert_eq!(stdout(&env), expected_status_json(), "subcommand flags are read from STOLONCTL_*");

    let bad = f.ctl(&["status", "--format", "yaml"]).await;
    assert_one_line_error(&bad, "unrecognised output format \"yaml\"");
    assert!(bad.stdout.is_empty());
    leadership.resign().await.unwrap();
}

#[tokio::test]
async fn status_without_cluster_data_and_with_a_broken_one() {
    let f = Fixture::new("empty").await;
    let text = f.ctl(&["status"]).await;
    assert_ok(&text);
    assert_eq!(
        stdout(&text),
        "=== Active sentinels ===\n\nNo active sentinels\n\n=== Active proxies ===\n\nNo active proxies\n\n\
         === Keepers ===\n\nNo keepers available\n\nNo cluster available\n\n"
    );
    let js: Value = serde_json::from_slice(&f.ctl(&["status", "--format", "json"]).await.stdout).unwrap();
    assert_eq!(
        js,
        json!({"sentinels": [], "proxies": [], "keepers": [],
            "cluster": {"available": false, "master_keeper_uid": "", "master_db_uid": ""}})
    );
    // An unsupported format version is an error in JSON mode too: nothing on stdout, non-zero exit.
    f.raw.put_cluster_data(br#"{"formatVersion":2}"#).await.unwrap();
    for format in ["json", "text"] {
        let o = f.ctl(&["status", "--format", format]).await;
        assert_one_line_error(&o, "unsupported clusterdata format version 2");
        assert!(o.stdout.is_empty(), "{}", stdout(&o));
    }
}

#[tokio::test]
async fn init_validates_confirms_and_says_what_it_replaces() {
    let f = Fixture::new("init").await;
    // stdin is not a terminal: no prompt, a refusal.
    let refused = f.ctl(&["init"]).await;
    assert_one_line_error(&refused, "pass --yes");
    assert!(f.doc().await.is_none(), "nothing written");

    let o = f.ctl(&["init", "-y"]).await;
    assert_ok(&o);
    let first = f.data().await;
    assert_eq!(serde_json::to_value(&first.cluster.spec).unwrap()["initMode"], "new");
    assert_eq!(first.cluster.status.phase.as_ref().map(|p| p.to_string()).as_deref(), Some("initializing"));
    assert_eq!(first.format_version, 1);
    assert_eq!(first.cluster.uid.len(), 8);
    assert!(stdout(&o).contains(&format!("cluster {} initialised", first.cluster.uid)));
    assert!(!stdout(&o).contains("current cluster data will be removed"), "nothing replaced: {}", stdout(&o));

    // Replacing says what is replaced; the spec comes from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, r#"{"initMode":"new","sleepInterval":"2s"}"#).unwrap();
    let o = f.ctl(&["init", "--yes", "--file", path.to_str().unwrap()]).await;
    assert_ok(&o);
    assert!(
        stdout(&o)
            .contains(&format!("WARNING: The current cluster data will be removed: cluster {}", first.cluster.uid))
    );
    let second = f.data().await;
    assert_ne!(second.cluster.uid, first.cluster.uid, "a new cluster UID");
    assert_eq!(second.cluster.spec.sleep_interval(), Duration::from_secs(2));

    // From stdin, and as an argument; STOLONCTL_YES confirms.
    assert_ok(&f.ctl_stdin(&["init", "-y", "-f", "-"], br#"{"initMode":"new","maxStandbys":4}"#).await);
    assert_eq!(f.data().await.cluster.spec.max_standbys(), 4);
    assert_ok(&f.ctl_env(&["init", r#"{"initMode":"new","maxStandbys":5}"#], &[("STOLONCTL_YES", "true")]).await);
    assert_eq!(f.data().await.cluster.spec.max_standbys(), 5);

    // Bad input writes nothing.
    assert_rejected(&f, &["init", "-y", "{\"initMode\":"], None, "invalid cluster spec: not valid JSON").await;
    let line = assert_rejected(&f, &["init", "-y", r#"{"initMode":"new","maxStandbys":0}"#], None, "maxStandbys").await;
    assert!(line.contains("must be at least 1") && line.contains("rule 3"), "{line}");
    assert_rejected(&f, &["init", "-y", r#"{"sleepInterval":"1s"}"#], None, "initMode is required").await;
    assert_rejected(&f, &["init", "-y", r#"{"initMode":"new","maxStandbys":"many"}"#], None, "maxStandbys").await;
    assert_rejected(&f, &["init", "-y", "-f", "/nonexistent/spec.json"], None, "cannot read /nonexistent/spec.json")
        .await;
    assert_rejected(&f, &["init", "-y", "{}", "-f", "x"], None, "only one of").await;
}

#[tokio::test]
async fn spec_prints_set_fields_or_everything_with_defaults() {
    let f = Fixture::new("spec").await;
    assert_rejected(&f, &["spec"], None, "no cluster data in the store").await;
    assert_ok(&f.ctl(&["init", "-y", r#"{"initMode":"new","sleepInterval":"2s","pgHBA":[]}"#]).await);
    let o = f.ctl(&["spec"]).await;
    assert_ok(&o);
    assert_eq!(stdout(&o), "{\n\t\"sleepInterval\": \"2s\",\n\t\"initMode\": \"new\",\n\t\"pgHBA\": []\n}\n");
    let d: Value = serde_json::from_slice(&f.ctl(&["spec", "--defaults"]).await.stdout).unwrap();
    assert_eq!(d["sleepInterval"], "2s");
    assert_eq!(d["requestTimeout"], "10s");
    assert_eq!(d["failInterval"], "20s");
    assert_eq!(d["maxStandbysPerSender"], 3);
    assert_eq!(d["synchronousReplication"], false);
    assert_eq!(d["defaultSUReplAccessMode"], "all");
    assert_eq!(d["pgHBA"], json!([]));
}

#[tokio::test]
async fn update_replaces_or_merge_patches_the_spec() {
    let f = Fixture::new("update").await;
    let initial = r#"{"initMode":"new","sleepInterval":"2s","pgParameters":{"a":"1","b":"2"},"pgHBA":["host all all 0.0.0.0/0 md5","local all all trust"]}"#;
    assert_ok(&f.ctl(&["init", "-y", initial]).await);
    let uid = f.data().await.cluster.uid;
    let spec = |cd: &ClusterData| serde_json::to_value(&cd.cluster.spec).unwrap();

    // Patch: objects merge, null removes one key, arrays are replaced.
    assert_ok(
        &f.ctl(&["update", "--patch", r#"{"pgParameters":{"a":null,"c":"3"},"pgHBA":["local all all md5"]}"#]).await,
    );
    let s = spec(&f.data().await);
    assert_eq!(s["pgParameters"], json!({"b": "2", "c": "3"}));
    assert_eq!(s["pgHBA"], json!(["local all all md5"]));
    assert_eq!(s["sleepInterval"], "2s", "untouched fields are kept");
    // null on a whole object removes it; -p from a file.
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("patch.json");
    std::fs::write(&patch, r#"{"pgParameters":null,"pgHBA":null,"maxStandbys":7}"#).unwrap();
    assert_ok(&f.ctl(&["update", "-p", "-f", patch.to_str().unwrap()]).await);
    let s = spec(&f.data().await);
    assert!(s.get("pgParameters").is_none(), "{s}");
    assert_eq!(s["pgHBA"], Value::Null);
    assert_eq!(s["maxStandbys"], 7);

    // Replace: the JSON is the whole spec; unset fields fall back to defaults. From stdin.
    assert_ok(&f.ctl_stdin(&["update", "-f", "-"], br#"{"initMode":"new","usePgrewind":true}"#).await);
    let cd = f.data().await;
    let s = spec(&cd);
    assert_eq!(s["usePgrewind"], true);
    assert!(s.get("sleepInterval").is_none() && s.get("maxStandbys").is_none(), "{s}");
    assert_eq!(cd.cluster.uid, uid, "an update keeps the cluster");

    // The spec update rules and bad input: nothing written.
    assert_rejected(
        &f,
        &["update", "-p", r#"{"initMode":"pitr","pitrConfig":{"dataRestoreCommand":"x"}}"#],
        None,
        "initMode cannot be changed",
    )
    .await;
    assert_rejected(&f, &["update", "-p", r#"{"initMode":null}"#], None, "initMode is required").await;
    assert_rejected(
        &f,
        &["update", "-p", r#"{"role":"standby","standbyConfig":{}}"#],
        None,
        "role must not be standby when initMode is new",
    )
    .await;
    let line =
        assert_rejected(&f, &["update", "-p", r#"{"proxyCheckInterval":"30s"}"#], None, "proxyCheckInterval").await;
    assert!(line.contains("rule 2"), "{line}");
    assert_rejected(&f, &["update", "-p", "{\"maxStandbys\":"], None, "invalid spec patch: not valid JSON").await;
    assert_rejected(&f, &["update", "-p", "[1,2]"], None, "expected a JSON object").await;
    assert_rejected(&f, &["update", "{\"sleepInterval\":"], None, "invalid cluster spec: not valid JSON").await;
    assert_rejected(&f, &["update"], None, "no cluster spec provided").await;

    // An invalid stored spec stops every component; update is how it gets repaired.
    let mut broken = serde_json::to_value(f.data().await).unwrap();
    broken["cluster"]["spec"]["maxStandbys"] = json!(0);
    f.write(&broken).await;
    assert_rejected(&f, &["spec"], None, "the stored cluster spec is invalid: maxStandbys (0) must be at least 1")
        .await;
    assert_ok(&f.ctl(&["update", "-p", r#"{"maxStandbys":2}"#]).await);
    assert_eq!(f.data().await.cluster.spec.max_standbys(), 2);
}

/// A store that lets a competing writer change the cluster data just before each of our first
/// `races` compare-and-swap writes, as a sentinel would.
struct RacingStore {
    inner: Arc<dyn Store>,
    races: AtomicUsize,
    cas_calls: AtomicUsize,
}

impl RacingStore {
    async fn compete(&self) -> StoreResult<()> {
        let doc = self.inner.get_cluster_data().await?.expect("cluster data");
        let mut cd = ClusterData::from_json(&doc.value).expect("decodes").expect("present");
        let n = self.cas_calls.load(Ordering::SeqCst);
        cd.cluster.spec.pg_parameters.get_or_insert_default().insert(format!("racer{n}"), "x".into());
        self.inner.put_cluster_data(&cd.to_json().expect("encodes")).await.map(drop)
    }
}

#[async_trait]
impl Election for RacingStore {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        self.inner.campaign(candidate, ttl).await
    }
    async fn leader(&self) -> StoreResult<Option<String>> {
        self.inner.leader().await
    }
}

#[async_trait]
impl Store for RacingStore {
    fn backend(&self) -> StoreBackend {
        self.inner.backend()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get_cluster_data(&self) -> StoreResult<Option<Document>> {
        self.inner.get_cluster_data().await
    }
    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        self.cas_calls.fetch_add(1, Ordering::SeqCst);
        if self.races.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1)).is_ok() {
            self.compete().await?;
        }
        self.inner.put_cluster_data_cas(value, expected).await
    }
    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        self.inner.put_cluster_data(value).await
    }
    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        self.inner.set_member(kind, id, value, ttl).await
    }
    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        self.inner.delete_member(kind, id).await
    }
    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        self.inner.list_members(kind).await
    }
    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        self.inner.watch_cluster_data(after).await
    }
    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        self.inner.watch_members(kind).await
    }
}

#[tokio::test]
async fn updates_retry_when_a_concurrent_writer_wins() {
    let f = Fixture::new("race").await;
    assert_ok(&f.ctl(&["init", "-y", r#"{"initMode":"new","pgParameters":{"a":"1"}}"#]).await);
    let racing =
        Arc::new(RacingStore { inner: f.raw.clone(), races: AtomicUsize::new(2), cas_calls: AtomicUsize::new(0) });
    let store = ClusterStore::new(racing.clone());

    // Two lost races, then the patch applies on top of both competing changes.
    let patch = SpecUpdate::parse(br#"{"pgParameters":{"mine":"y"}}"#, true).unwrap();
    let done = ctl::update_spec(&store, &patch).await.expect("third attempt wins");
    assert_eq!(done.attempts, 3);
    let params = f.data().await.cluster.spec.pg_parameters();
    assert_eq!(params.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "mine", "racer1", "racer2"]);

    // failkeeper and removekeeper retry too (stolon did not).
    f.write(&realistic_cluster()).await;
    racing.races.store(1, Ordering::SeqCst);
    let failed = ctl::fail_keeper(&store, "keeper1").await.expect("retried");
    assert_eq!(failed.attempts, 2);
    let cd = f.data().await;
    assert!(cd.keepers["keeper1"].status.force_fail);
    assert!(cd.cluster.spec.pg_parameters().contains_key("racer4"), "the competing write is kept");
    racing.races.store(1, Ordering::SeqCst);
    assert_eq!(ctl::remove_keeper(&store, "keeper2").await.expect("retried").attempts, 2);
    assert!(!f.data().await.keepers.contains_key("keeper2"));

    // A writer that always wins: give up after MAX_ATTEMPTS, our change never written.
    racing.races.store(usize::MAX, Ordering::SeqCst);
    let err = ctl::update_spec(&store, &SpecUpdate::parse(br#"{"maxStandbys":9}"#, true).unwrap()).await.unwrap_err();
    assert!(matches!(err, CtlError::TooManyConflicts { attempts: ctl::MAX_ATTEMPTS }), "{err}");
    assert_ne!(f.data().await.cluster.spec.max_standbys(), 9);
}
