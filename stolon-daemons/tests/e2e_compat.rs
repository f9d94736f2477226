//! stolon compatibility scenarios: a takeover of a store written by stolon 0.17 (its real documents, from
//! `stolon-core/tests/fixtures/stolon-0.17/`), and `stolonctl removekeeper` staying done across sentinel
//! passes and a change of leader sentinel.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use stolon_core::cluster::ClusterData;
use stolon_core::postgres::replication::control_system_id;

use harness::stolon_fixtures::{self, Instance, fixture, record, seed_etcdv3};
use harness::{Backend, Env, R, Scenario, TestCluster, WAIT, base_spec, merged, sql, wait_for};

/// Leader passes each check observes (sleepInterval is 1 s).
const PASSES: usize = 3;
/// Bound of [`PASSES`] passes.
const PASSES_LIMIT: Duration = Duration::from_secs(30);

/// The lease of the member records and of the election key seeded as stolon's components left them.
const STOLON_LEASE: Duration = Duration::from_secs(15);

fn main() {
    let etcd_only = "the stolon 0.17 documents are an etcd v3 store (keys and election record)";
    harness::runner::run(vec![
        Scenario::full("TestTakeoverOfStolonStore", test_takeover_of_stolon_store)
            .not_on(Backend::EtcdV2, etcd_only)
            .not_on(Backend::Consul, etcd_only)
            .not_on(Backend::Kubernetes, etcd_only),
        Scenario::full("TestRemovedKeeperStaysRemoved", test_removed_keeper_stays_removed),
    ]);
}

/// The UIDs the stolon 0.17 documents give the master DB (on keeper0) and the standby DB (on keeper1).
const STOLON_MASTER_DB: &str = "c7399fa2";
const STOLON_STANDBY_DB: &str = "6d5132c2";

/// Writes keeper `uid`'s state files as a stolon keeper left them: keeper0's are the fixture's own files,
/// keeper1's the same shapes for the standby DB of the documents.
fn write_stolon_state_files(c: &TestCluster, uid: &str) -> R<()> {
    let dir = &c.keeper_ref(uid)?.data_dir;
    let (keeper_state, db_state) = if uid == "keeper0" {
        (fixture("keeper-datadir-keeperstate.json")?, fixture("keeper-datadir-dbstate.json")?)
    } else {
        let (_, cd) = record("clusterdata.json")?;
        let generation = &cd["dbs"][STOLON_STANDBY_DB]["generation"];
        let ks = json!({"UID": uid, "ClusterUID": cd["cluster"]["uid"]});
        let ds = json!({"UID": STOLON_STANDBY_DB, "Generation": generation, "Initializing": false, "InitPGParameters": null});
        (serde_json::to_vec(&ks)?, serde_json::to_vec(&ds)?)
    };
    std::fs::write(dir.join("keeperstate"), keeper_state)?;
    std::fs::write(dir.join("dbstate"), db_state)?;
    Ok(())
}

/// Checks that component `name`'s log has, for each `(level, message)`, a line with exactly that message
/// (stolon's words, docs/log-messages.md).
fn assert_logged(name: &str, log: &str, lines: &[(&str, &str)]) -> R<()> {
    for (level, message) in lines {
        let found = log.lines().any(|l| {
            l.split_once(&format!(" {level} "))
                .and_then(|(_, rest)| rest.split_once(": "))
                .and_then(|(_, msg)| msg.strip_prefix(message))
                .is_some_and(|after| after.is_empty() || after.starts_with(' '))
        });
        ensure!(found, "{name} logged no {level} line {message:?}");
    }
    Ok(())
}

/// `v` without its `null` members (Go reads `null` and an absent member alike).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect())
        }
        other => other.clone(),
    }
}

/// Waits until keeper `uid` publishes, from a new process, that it hosts DB `db` at `generation` of cluster
/// `cluster_uid`; returns its boot UUID.
async fn wait_adopted(c: &TestCluster, uid: &str, cluster_uid: &str, db: &str, generation: i64) -> R<String> {
    let (_, stolon_info) = record("keepers-info.json")?;
    let stolon_boot = stolon_info["bootUUID"].as_str().unwrap_or_default().to_string();
    let stolon_boot = &stolon_boot;
    wait_for(&format!("{uid} publishing DB {db} generation {generation}"), WAIT, || async move {
        let infos = c.client.keeper_infos().await?;
        let Some(ki) = infos.valid.get(uid) else { return Ok(None) };
        let state = ki.postgres_state.as_ref().map(|s| (s.uid.as_str(), s.generation));
        Ok((ki.boot_uuid != *stolon_boot && ki.cluster_uid == cluster_uid && state == Some((db, generation)))
            .then(|| ki.boot_uuid.clone()))
    })
    .await
}

/// A takeover of a store that stolon 0.17 wrote (issue 18): the store holds stolon's real documents (cluster
/// data of a synchronous cluster in phase normal, member records, the etcd v3 election record of its
/// sentinel) and each keeper's data directory holds stolon's state files. stolonctl reads it as it is; our
/// keepers adopt their identity (keeper0 is started without `--uid`) and DB state from the state files and
/// keep PostgreSQL stopped until a sentinel acknowledges their new boot; our sentinel waits until stolon's
/// leader lease runs out, then leads and keeps stolon's master and standby DBs (no election, no resync);
/// our proxy is enabled and routes to stolon's master; writes commit synchronously.
///
/// The documents describe instances that ran where the fixtures were made: this scenario creates matching
/// instances first (keeper0 a synchronous master, keeper1 its standby) and gives the documents their ports
/// and system identifier; everything else is stolon's.
async fn test_takeover_of_stolon_store(env: Env) -> R<()> {
    let (_, stolon_cd) = record("clusterdata.json")?;
    let spec = merged(base_spec(), &json!({ "synchronousReplication": true, "maxSynchronousStandbys": 1 }));
    let mut c = TestCluster::start(&env, &spec, 0, 1, 0).await?;
    let master = c.add_keeper().await?;
    c.wait_master_ready().await?;
    let standby = c.add_keeper().await?;
    ensure!((master.as_str(), standby.as_str()) == ("keeper0", "keeper1"), "the documents name keeper0 and keeper1");
    c.wait_standby(&standby, WAIT).await?;
    c.wait_sync_standbys(&[&standby], WAIT).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    drop(m);
    c.wait_rows(&standby, &[1], WAIT).await?;
    c.keeper(&standby)?.stop().await?;
    c.keeper(&master)?.stop().await?;
    c.sentinels[0].stop().await?;

    let mut instances = BTreeMap::new();
    for (uid, db) in [(&master, STOLON_MASTER_DB), (&standby, STOLON_STANDBY_DB)] {
        write_stolon_state_files(&c, uid)?;
        let k = c.keeper_ref(uid)?;
        instances.insert(db.to_string(), Instance { port: k.pg_port, system_id: control_system_id(&k.pgdata())? });
    }
    c.rename(&stolon_fixtures::cluster_name()?).await?;
    // The documents' failInterval (4 s) would let a loaded machine fail keeper0 over while it restarts
    // PostgreSQL after the sentinel acknowledged its new boot: a takeover restarts every keeper, so it is
    // seeded with stolon's default (see docs/migration.md).
    let spec_changes = json!({ "failInterval": "20s" });
    seed_etcdv3(&c.store_endpoint()?, &instances, &spec_changes, STOLON_LEASE).await?;

    // stolonctl reads the store as stolon left it.
    let (_, stolon_leader) = record("sentinel-leader.json")?;
    let stolon_leader = stolon_leader.as_str().context("the election record is a string")?.to_string();
    ensure!(c.client.leader().await?.as_ref() == Some(&stolon_leader), "stolon's election record is read");
    let status: Value = serde_json::from_str(&c.stolonctl_ok(&["status", "--format", "json"]).await?)?;
    let (_, stolon_proxy) = record("proxies-info.json")?;
    ensure!(
        status["cluster"]["master_db_uid"] == STOLON_MASTER_DB
            && status["cluster"]["master_keeper_uid"] == master.as_str()
            && status["sentinels"] == json!([{"uid": stolon_leader, "leader": true}])
            && status["proxies"] == json!([{"uid": stolon_proxy["UID"], "generation": stolon_proxy["Generation"]}])
            && status["keepers"].as_array().map(Vec::len) == Some(2),
        "stolonctl status on stolon's store: {status}"
    );

    c.keeper(&master)?.proc.remove_arg("--uid");
    c.keeper(&master)?.start()?;
    c.keeper(&standby)?.start()?;
    let cluster_uid = stolon_cd["cluster"]["uid"].as_str().context("cluster uid")?;
    let generation = |db: &str| stolon_cd["dbs"][db]["generation"].as_i64().unwrap_or_default();
    wait_adopted(&c, &master, cluster_uid, STOLON_MASTER_DB, generation(STOLON_MASTER_DB)).await?;
    wait_adopted(&c, &standby, cluster_uid, STOLON_STANDBY_DB, generation(STOLON_STANDBY_DB)).await?;
    ensure!(
        c.keeper_ref(&master)?.postmaster_pid().is_none(),
        "keeper0 started PostgreSQL before a sentinel acknowledged its new boot"
    );

    c.add_sentinel().await?;
    let (client, stolon_leader) = (&c.client, &stolon_leader);
    wait_for("our sentinel leading after stolon's lease", WAIT, || async move {
        Ok(client.leader().await?.filter(|l| l != stolon_leader))
    })
    .await?;
    c.wait_in_recovery(&master, false, WAIT).await?;
    c.wait_standby(&standby, WAIT).await?;
    c.wait_sync_standbys(&[&standby], WAIT).await?;
    c.wait_rows(&standby, &[1], WAIT).await?;

    c.add_proxy().await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    let client = c.proxies[0].connect().await.context("connecting through our proxy")?;
    sql::write_row(&client, 2).await.context("writing through our proxy")?;
    c.wait_rows(&standby, &[1, 2], WAIT).await?;

    let cd = c.cd().await?;
    ensure!(cd.cluster.uid == cluster_uid, "cluster UID changed to {}", cd.cluster.uid);
    ensure!(cd.cluster.status.master == STOLON_MASTER_DB, "stolon's master DB was replaced: {}", harness::summary(&cd));
    ensure!(
        cd.db_of_keeper(&standby).map(|d| d.uid.as_str()) == Some(STOLON_STANDBY_DB),
        "stolon's standby DB was replaced (a resync): {}",
        harness::summary(&cd)
    );
    let status: Value = serde_json::from_str(&c.stolonctl_ok(&["status", "--format", "json"]).await?)?;
    ensure!(status["cluster"]["master_db_uid"] == STOLON_MASTER_DB, "stolonctl status after the takeover: {status}");
    // Normal users are let in by the keeper's first pass after its synchronous standby is synced, which may
    // follow the checks above by a pass (the standby retries streaming every 5 s when it asked for its slot
    // before the master created it).
    let hba_reload = "postgres hba entries changed, reloading postgres instance";
    c.keeper_ref(&master)?.proc.wait_log(0, hba_reload, WAIT).await?;
    assert_logged(
        "keeper0",
        &c.keeper_ref(&master)?.proc.log_text(),
        &[
            ("INFO", "our db boot UID is different than the cluster data one, waiting for it to be updated"),
            ("INFO", "our db requested role is master"),
            (
                "INFO",
                "not allowing connection as normal users since synchronous replication is enabled and instance was down",
            ),
            ("INFO", "starting database"),
            ("INFO", "already master"),
            ("INFO", "creating replication slot"),
            ("INFO", "postgres parameters not changed"),
            ("INFO", "postgres hba entries changed, reloading postgres instance"),
            ("INFO", "reloading database configuration"),
        ],
    )?;
    assert_logged(
        "keeper1",
        &c.keeper_ref(&standby)?.proc.log_text(),
        &[("INFO", "our db requested role is standby"), ("INFO", "already standby")],
    )?;
    let spec: Value = serde_json::from_str(&c.stolonctl_ok(&["spec"]).await?)?;
    let mut stolon_spec = without_nulls(&stolon_cd["cluster"]["spec"]);
    stolon_spec["failInterval"] = spec_changes["failInterval"].clone();
    ensure!(without_nulls(&spec) == stolon_spec, "stolonctl spec differs from the seeded one: {spec}");
    Ok(())
}

/// `keeper` is absent from the cluster data, has no DB and is marked removed with boot UUID `boot`.
fn removed(cd: &ClusterData, keeper: &str, boot: &str) -> R<()> {
    ensure!(!cd.keepers.contains_key(keeper), "{keeper} is in the cluster data again");
    ensure!(cd.db_of_keeper(keeper).is_none(), "{keeper} has a DB again");
    let mark =
        cd.cluster.status.removed_keepers.get(keeper).with_context(|| format!("{keeper} is not marked removed"))?;
    ensure!(mark.boot_uuid == boot, "{keeper} marked removed with boot UUID {:?}, not {boot:?}", mark.boot_uuid);
    Ok(())
}

/// Keeper `uid`'s boot UUID in the cluster data.
async fn boot_uuid(c: &TestCluster, uid: &str) -> R<String> {
    let cd = c.cd().await?;
    Ok(cd.keepers.get(uid).with_context(|| format!("{uid} is not in the cluster data"))?.status.boot_uuid.clone())
}

/// Waits until keeper `uid` is back in the cluster data with a boot UUID other than `old`, unmarked, and runs
/// a standby of a new DB.
async fn wait_back(c: &TestCluster, uid: &str, old_boot: &str) -> R<()> {
    c.wait_cd(&format!("{uid} back with a new boot UUID"), WAIT, |cd| {
        cd.keepers.get(uid).is_some_and(|k| k.status.boot_uuid != old_boot)
            && !cd.cluster.status.removed_keepers.contains_key(uid)
    })
    .await?;
    c.wait_standby(uid, WAIT).await
}

/// `stolonctl removekeeper` stays done (issue 18): a removed keeper is not added back from its info record,
/// whether its process is stopped (the record lives on until its TTL) or still running (it keeps
/// publishing), by the leader nor by the next leader sentinel; it comes back only when its process restarts
/// (a new boot UUID) and then gets a new DB. stolon added it back on the next pass that found its info
/// fresh.
async fn test_removed_keeper_stays_removed(env: Env) -> R<()> {
    let mut c = TestCluster::start(&env, &base_spec(), 0, 2, 0).await?;
    let master = c.add_keeper().await?;
    c.wait_master_ready().await?;
    let standby = c.add_keeper().await?;
    c.wait_standby(&standby, WAIT).await?;

    // A stopped keeper: its info record outlives it (TTL 20 s).
    let boot = boot_uuid(&c, &standby).await?;
    c.keeper(&standby)?.stop().await?;
    c.stolonctl_ok(&["removekeeper", &standby]).await?;
    removed(&c.cd().await?, &standby, &boot).context("right after removekeeper")?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot)).await?;
    c.keeper(&standby)?.start()?;
    wait_back(&c, &standby, &boot).await?;

    // A running keeper keeps publishing fresh infos with the same boot UUID; then the leader changes.
    let boot = boot_uuid(&c, &standby).await?;
    c.stolonctl_ok(&["removekeeper", &standby]).await?;
    removed(&c.cd().await?, &standby, &boot).context("right after removekeeper")?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot)).await?;
    let leader = c.leader_sentinel().await?;
    c.sentinels[leader].stop().await?;
    let next = c.wait_new_leader_sentinel(leader, WAIT).await?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot))
        .await
        .with_context(|| format!("passes of the new leader sentinel{next}"))?;
    ensure!(c.leader_sentinel().await? == next, "the leader changed again during the passes");

    c.keeper(&standby)?.stop().await?;
    c.keeper(&standby)?.start()?;
    wait_back(&c, &standby, &boot).await?;
    assert_logged(
        &standby,
        &c.keeper_ref(&standby)?.proc.log_text(),
        &[
            ("INFO", "our keeper data is not available, waiting for it to appear"),
            ("INFO", "stopping database"),
            ("INFO", "current db UID different than cluster data db UID"),
            ("INFO", "resyncing the database cluster"),
            ("INFO", "syncing from followed db"),
            ("INFO", "sync succeeded"),
        ],
    )?;
    ensure!(c.cd().await?.cluster.status.removed_keepers.is_empty(), "a removal mark is left");
    c.wait_master_is(&master, WAIT).await
}
