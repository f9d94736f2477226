//! `stolonctl status`: sentinels, proxies, keepers and the master/standby tree, as text or JSON.
//!
//! The JSON form ([`Status`]) is stable: its field names are stolon's and are only ever added to.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::CtlError;
use super::json::to_tab_indented;
use super::table;
use crate::cluster::ClusterData;
use crate::store::ClusterStore;

/// The cluster status (`stolonctl status --format json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Live sentinels, sorted by UID.
    pub sentinels: Vec<SentinelStatus>,
    /// Live proxies, sorted by UID.
    pub proxies: Vec<ProxyStatus>,
    /// Keepers of the cluster data, sorted by UID.
    pub keepers: Vec<KeeperStatus>,
    /// Cluster summary.
    pub cluster: ClusterSummary,
}

/// One live sentinel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelStatus {
    /// Sentinel UID.
    pub uid: String,
    /// Whether it is the elected leader.
    pub leader: bool,
}

/// One live proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {
    /// Proxy UID.
    pub uid: String,
    /// The proxy generation it has applied.
    pub generation: i64,
}

/// One keeper and the DB assigned to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperStatus {
    /// Keeper UID.
    pub uid: String,
    /// `address:port` of its DB, `(unknown)` while not reported, `(no db assigned)` without a DB.
    pub listen_address: String,
    /// The sentinel's verdict on the keeper.
    pub healthy: bool,
    /// The sentinel's verdict on its DB.
    pub pg_healthy: bool,
    /// The DB generation the keeper must reach.
    pub pg_wanted_generation: i64,
    /// The DB generation the keeper reported as applied.
    pub pg_current_generation: i64,
    /// The keeper's `--priority` (stolon-rs addition; absent when 0, so a plain cluster's JSON is stolon's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// Whether the keeper is in maintenance (stolon-rs addition; absent when not).
    #[serde(default, skip_serializing_if = "is_false")]
    pub maintenance: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Whether there is a cluster and who its master is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// True when the store holds cluster data.
    pub available: bool,
    /// The keeper hosting the master DB (empty when none).
    pub master_keeper_uid: String,
    /// The master DB UID (empty when none).
    pub master_db_uid: String,
    /// Whether the cluster is paused (stolon-rs addition; absent when not).
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// When the pause ends on its own (RFC 3339), absent for a pause until `resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
    /// The pending or running switchover, absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<SwitchoverStatus>,
    /// How the last switchover ended, absent when none was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_switchover: Option<LastSwitchover>,
    /// The running rolling restart, absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<super::status_ops::RestartStatus>,
    /// How the last rolling restart ended, absent when none was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<super::status_ops::LastOperation>,
    /// The running reinit, absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinit: Option<super::status_ops::ReinitStatus>,
    /// How the last reinit ended, absent when none was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reinit: Option<super::status_ops::LastOperation>,
}

/// A pending or running switchover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverStatus {
    /// Request UID.
    pub uid: String,
    /// scheduled, fencing or promoting.
    pub phase: String,
    /// Requested time (RFC 3339), absent = as soon as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Requested candidate keeper, empty = automatic.
    pub to_keeper: String,
    /// Timeout (Go duration).
    pub timeout: String,
}

/// The outcome of the last switchover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSwitchover {
    /// Request UID.
    pub uid: String,
    /// completed, aborted, refused or cancelled.
    pub outcome: String,
    /// One line.
    pub message: String,
    /// When it ended (RFC 3339).
    pub time: String,
}

/// The status plus what only the text form shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusReport {
    /// The JSON-able status.
    pub status: Status,
    /// The master/standby tree, one line per keeper (empty without a master).
    pub tree: Vec<String>,
}

/// Gathers the status from the store. A missing cluster data is reported as `available: false`; an
/// unreachable store, undecodable cluster data or an invalid stored spec are errors.
pub async fn gather_status(store: &ClusterStore) -> Result<StatusReport, CtlError> {
    let leader = store.leader().await?;
    let mut sentinels: Vec<SentinelStatus> = store
        .sentinel_infos()
        .await?
        .valid
        .into_iter()
        .map(|(id, info)| {
            let uid = if info.uid.is_empty() { id } else { info.uid };
            SentinelStatus { leader: leader.as_deref() == Some(uid.as_str()), uid }
        })
        .collect();
    sentinels.sort_by(|a, b| a.uid.cmp(&b.uid));
    let mut proxies: Vec<ProxyStatus> = store
        .proxy_infos()
        .await?
        .valid
        .into_iter()
        .map(|(id, info)| ProxyStatus {
            uid: if info.uid.is_empty() { id } else { info.uid },
            generation: info.generation,
        })
        .collect();
    proxies.sort_by(|a, b| a.uid.cmp(&b.uid));
    let cd = match store.cluster_data().await? {
        Some(current) => {
            current.data.cluster.spec.validate().map_err(CtlError::StoredSpecInvalid)?;
            Some(current.data)
        }
        None => None,
    };
    Ok(build_report(sentinels, proxies, cd.as_ref()))
}

/// Builds the report from gathered parts (pure).
pub fn build_report(
    sentinels: Vec<SentinelStatus>,
    proxies: Vec<ProxyStatus>,
    cd: Option<&ClusterData>,
) -> StatusReport {
    let Some(cd) = cd else {
        return StatusReport {
            status: Status { sentinels, proxies, keepers: Vec::new(), cluster: ClusterSummary::default() },
            tree: Vec::new(),
        };
    };
    let keepers = cd
        .keepers
        .iter()
        .map(|(uid, keeper)| {
            let mut k = KeeperStatus {
                uid: uid.clone(),
                listen_address: "(no db assigned)".into(),
                healthy: keeper.status.healthy,
                priority: keeper.spec.priority,
                maintenance: keeper.spec.maintenance,
                ..KeeperStatus::default()
            };
            if let Some(db) = cd.db_of_keeper(uid) {
                k.listen_address = if db.status.listen_address.is_empty() {
                    "(unknown)".into()
                } else {
                    format!("{}:{}", db.status.listen_address, db.status.port)
                };
                k.pg_healthy = db.status.healthy;
                k.pg_wanted_generation = db.generation;
                k.pg_current_generation = db.status.current_generation;
            }
            k
        })
        .collect();
    let ops = &cd.operations;
    let mut cluster = ClusterSummary {
        available: true,
        paused: crate::ops::pause::is_paused(cd, crate::time::Timestamp::now()),
        paused_until: ops.pause.as_ref().and_then(|p| p.until).map(|t| t.to_string()),
        switchover: ops.switchover.as_ref().map(|sw| SwitchoverStatus {
            uid: sw.uid.clone(),
            phase: sw.phase.to_string(),
            at: sw.at.map(|t| t.to_string()),
            to_keeper: sw.to_keeper.clone(),
            timeout: sw.timeout.to_string(),
        }),
        last_switchover: ops.last_switchover.as_ref().map(|r| LastSwitchover {
            uid: r.uid.clone(),
            outcome: r.outcome.clone(),
            message: r.message.clone(),
            time: r.time.to_string(),
        }),
        ..ClusterSummary::default()
    };
    let rr = super::status_ops::restart_reinit_status(cd);
    (cluster.restart, cluster.last_restart, cluster.reinit, cluster.last_reinit) =
        (rr.restart, rr.last_restart, rr.reinit, rr.last_reinit);
    if let Some(master) = cd.master_db() {
        cluster.master_db_uid = master.uid.clone();
        cluster.master_keeper_uid = master.spec.keeper_uid.clone();
    }
    let tree = if cluster.master_db_uid.is_empty() { Vec::new() } else { db_tree(cd, &cluster.master_db_uid) };
    StatusReport { status: Status { sentinels, proxies, keepers, cluster }, tree }
}

/// Draws the DB `root` and its followers, recursively, as keeper UIDs; the master is marked `(master)`.
/// Followers missing from the cluster data (just removed) are skipped.
pub fn db_tree(cd: &ClusterData, root: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    draw(cd, root, 0, "", true, &mut seen, &mut lines);
    lines
}

fn draw(
    cd: &ClusterData,
    db_uid: &str,
    depth: usize,
    prefix: &str,
    last: bool,
    seen: &mut BTreeSet<String>,
    lines: &mut Vec<String>,
) {
    let Some(db) = cd.dbs.get(db_uid) else { return };
    if !seen.insert(db_uid.to_string()) {
        return; // a follower cycle in corrupted data: draw each DB once
    }
    let branch = match (depth, last) {
        (0, _) => "",
        (_, true) => "└─",
        (_, false) => "├─",
    };
    let marker = if db_uid == cd.cluster.status.master { " (master)" } else { "" };
    lines.push(format!("{prefix}{branch}{}{marker}", db.spec.keeper_uid));
    let child_prefix = match (depth, last) {
        (0, _) => prefix.to_string(),
        (_, true) => format!("{prefix}  "),
        (_, false) => format!("{prefix}│ "),
    };
    let followers = db.spec.followers();
    for (i, follower) in followers.iter().enumerate() {
        draw(cd, follower, depth + 1, &child_prefix, i + 1 == followers.len(), seen, lines);
    }
}

/// The text form, with stolon's sections and columns.
pub fn render_text(report: &StatusReport) -> String {
    let s = &report.status;
    let mut out = String::new();
    out.push_str("=== Active sentinels ===\n\n");
    if s.sentinels.is_empty() {
        out.push_str("No active sentinels\n");
    } else {
        let mut rows = vec![(vec!["ID".to_string()], "LEADER".to_string())];
        rows.extend(s.sentinels.iter().map(|x| (vec![x.uid.clone()], x.leader.to_string())));
        out.push_str(&table::render(&rows));
    }
    out.push_str("\n=== Active proxies ===\n\n");
    if s.proxies.is_empty() {
        out.push_str("No active proxies\n");
    } else {
        out.push_str("ID\n");
        for p in &s.proxies {
            out.push_str(&p.uid);
            out.push('\n');
        }
    }
    out.push_str("\n=== Keepers ===\n\n");
    if s.keepers.is_empty() {
        out.push_str("No keepers available\n\n");
    } else {
        let header = ["UID", "HEALTHY", "PG LISTENADDRESS", "PG HEALTHY", "PG WANTEDGENERATION"];
        let mut rows = vec![(header.map(String::from).to_vec(), "PG CURRENTGENERATION".to_string())];
        rows.extend(s.keepers.iter().map(|k| {
            let cells = vec![
                k.uid.clone(),
                k.healthy.to_string(),
                k.listen_address.clone(),
                k.pg_healthy.to_string(),
                k.pg_wanted_generation.to_string(),
                k.pg_current_generation.to_string(),
            ];
            (cells, String::new())
        }));
        out.push_str(&table::render(&rows));
    }
    if !s.cluster.available {
        out.push_str("No cluster available\n");
    } else {
        out.push_str("\n=== Cluster Info ===\n\n");
        out.push_str(&operations_text(s));
        if s.cluster.master_keeper_uid.is_empty() {
            out.push_str("Master Keeper: (none)\n");
        } else {
            out.push_str(&format!("Master Keeper: {}\n", s.cluster.master_keeper_uid));
        }
        if !report.tree.is_empty() {
            out.push_str("\n===== Keepers/DB tree =====\n\n");
            for line in &report.tree {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    out
}

/// The operations lines of the text form: pause, switchover, maintenance and priorities (nothing when
/// there are none, so a plain cluster shows stolon's text unchanged).
fn operations_text(s: &Status) -> String {
    let mut out = String::new();
    let c = &s.cluster;
    if c.paused {
        match &c.paused_until {
            Some(until) => out.push_str(&format!("PAUSED until {until}: no failover, switchover or reconfiguration\n")),
            None => out.push_str("PAUSED until `stolonctl resume`: no failover, switchover or reconfiguration\n"),
        }
    }
    let maintenance: Vec<&str> = s.keepers.iter().filter(|k| k.maintenance).map(|k| k.uid.as_str()).collect();
    if !maintenance.is_empty() {
        out.push_str(&format!("Keepers in maintenance: {}\n", maintenance.join(", ")));
    }
    let priorities: Vec<String> =
        s.keepers.iter().filter(|k| k.priority != 0).map(|k| format!("{}={}", k.uid, k.priority)).collect();
    if !priorities.is_empty() {
        out.push_str(&format!("Keeper priorities: {}\n", priorities.join(", ")));
    }
    if let Some(sw) = &c.switchover {
        let to = if sw.to_keeper.is_empty() { "the best standby" } else { sw.to_keeper.as_str() };
        let when = sw.at.as_deref().map(|at| format!(" at {at}")).unwrap_or_default();
        out.push_str(&format!("Switchover: {}{when} to {to} (timeout {})\n", sw.phase, sw.timeout));
    }
    if let Some(last) = &c.last_switchover {
        out.push_str(&format!("Last switchover: {} at {}: {}\n", last.outcome, last.time, last.message));
    }
    out.push_str(&super::status_ops::restart_reinit_text(
        c.restart.as_ref(),
        c.last_restart.as_ref(),
        c.reinit.as_ref(),
        c.last_reinit.as_ref(),
    ));
    out
}

/// The JSON form: tab-indented, stolon's field names.
pub fn render_json(status: &Status) -> String {
    // Plain strings, booleans and integers: serialising cannot fail.
    to_tab_indented(status).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Db, Keeper};

    fn db(uid: &str, keeper: &str, followers: &[&str]) -> Db {
        let mut db = Db { uid: uid.into(), generation: 2, ..Db::default() };
        db.spec.keeper_uid = keeper.into();
        db.spec.followers = Some(followers.iter().map(|f| f.to_string()).collect());
        db
    }

    fn cluster(dbs: Vec<Db>, master: &str) -> ClusterData {
        let mut cd = ClusterData::default();
        for d in dbs {
            cd.keepers
                .insert(d.spec.keeper_uid.clone(), Keeper { uid: d.spec.keeper_uid.clone(), ..Keeper::default() });
            cd.dbs.insert(d.uid.clone(), d);
        }
        cd.cluster.status.master = master.into();
        cd
    }

    #[test]
    fn tree_draws_branches_and_skips_missing_followers() {
        let cd = cluster(
            vec![
                db("d0", "k0", &["d1", "gone", "d2"]),
                db("d1", "k1", &["d3", "d4"]),
                db("d2", "k2", &["d5"]),
                db("d3", "k3", &[]),
                db("d4", "k4", &[]),
                db("d5", "k5", &[]),
            ],
            "d0",
        );
        assert_eq!(db_tree(&cd, "d0"), ["k0 (master)", "├─k1", "│ ├─k3", "│ └─k4", "└─k2", "  └─k5"]);
    }

    #[test]
    fn tree_survives_cycles() {
        let cd = cluster(vec![db("d0", "k0", &["d1"]), db("d1", "k1", &["d0"])], "d0");
        assert_eq!(db_tree(&cd, "d0"), ["k0 (master)", "└─k1"]);
    }

    #[test]
    fn text_without_anything() {
        let report = build_report(vec![], vec![], None);
        assert_eq!(
            render_text(&report),
            "=== Active sentinels ===\n\nNo active sentinels\n\n=== Active proxies ===\n\nNo active proxies\n\n\
             === Keepers ===\n\nNo keepers available\n\nNo cluster available\n\n"
        );
        assert!(!report.status.cluster.available);
    }

    #[test]
    fn keeper_without_db_or_address() {
        let mut cd = cluster(vec![db("d0", "k0", &[])], "");
        cd.keepers.insert("k9".into(), Keeper { uid: "k9".into(), ..Keeper::default() });
        let report = build_report(vec![], vec![], Some(&cd));
        assert_eq!(report.status.keepers[0].listen_address, "(unknown)");
        assert_eq!(report.status.keepers[1].listen_address, "(no db assigned)");
        assert_eq!(report.status.keepers[1].pg_wanted_generation, 0);
        assert!(report.tree.is_empty());
        assert!(render_text(&report).ends_with("=== Cluster Info ===\n\nMaster Keeper: (none)\n\n"));
    }
}
