//! The pure answer of every check: from (cluster data and its age, this keeper's observed PostgreSQL, the
//! loops' heartbeats, the query) to a status code and this member's JSON document with the reason.
//!
//! Every role check trusts the cluster data only while the keeper's last successful read of it is younger than
//! the spec's `proxyTimeout`: a member cut off from the store stops attracting traffic when the proxies stop
//! routing to it.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::endpoint::Check;
use super::sample::{PgObservation, PgSample, WalReceiver};
use super::view::{LoopState, liveness, liveness_bound};
use crate::cluster::{ClusterData, ClusterRole, Db, DbRole, FollowType};

/// Everything a check depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// This keeper's UID.
    pub keeper_uid: &'a str,
    /// The last valid cluster data read and how long ago, if any was read.
    pub cluster: Option<(&'a ClusterData, Duration)>,
    /// The DB UID of the local data directory (`dbstate`; empty when none).
    pub local_db: &'a str,
    /// PostgreSQL now.
    pub pg: &'a PgObservation,
    /// The loops' heartbeats.
    pub loops: &'a [LoopState],
}

/// A status code and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// 200 when the check passed, 503 when it did not.
    pub status: u16,
    /// The member document, with `check` when a check was asked.
    pub body: Value,
}

/// What the cluster data says of this keeper, derived once per request.
struct Facts<'a> {
    cd: Option<&'a ClusterData>,
    fresh: Result<(), String>,
    db: Option<&'a Db>,
    master: Option<&'a Db>,
}

impl<'a> Facts<'a> {
    fn of(i: &Inputs<'a>) -> Facts<'a> {
        let Some((cd, age)) = i.cluster else {
            return Facts { cd: None, fresh: Err("no cluster data was read yet".into()), db: None, master: None };
        };
        let bound = cd.cluster.spec.proxy_timeout();
        let fresh = if age < bound {
            Ok(())
        } else {
            Err(format!(
                "the cluster data was last read {:.1}s ago, not within proxyTimeout ({:.0}s): this keeper may be cut off from the store",
                age.as_secs_f64(),
                bound.as_secs_f64()
            ))
        };
        Facts { cd: Some(cd), fresh, db: cd.db_of_keeper(i.keeper_uid), master: cd.master_db() }
    }

    fn is_master(&self) -> bool {
        matches!((self.db, self.master), (Some(d), Some(m)) if d.uid == m.uid)
    }

    fn standby_cluster(&self) -> bool {
        self.cd.is_some_and(|cd| cd.cluster.spec.role() == ClusterRole::Standby)
    }

    fn role(&self) -> Option<&'static str> {
        let db = self.db?;
        if self.is_master() {
            Some("master")
        } else if db.spec.role == Some(DbRole::Standby) {
            Some("standby")
        } else {
            None
        }
    }

    /// The assigned DB, running here.
    fn own_db(&self, i: &Inputs) -> Result<&'a Db, String> {
        self.fresh.clone()?;
        let db = self.db.ok_or("the cluster data assigns no DB to this keeper")?;
        if i.local_db != db.uid {
            return Err(format!(
                "the local data directory holds DB {:?}, not the assigned DB {:?}",
                i.local_db, db.uid
            ));
        }
        Ok(db)
    }
}

type Verdict = Result<(), String>;

fn primary(f: &Facts, i: &Inputs) -> Verdict {
    let db = f.own_db(i)?;
    if !f.is_master() {
        return Err(format!("DB {} is not the master (the master is {})", db.uid, master_name(f)));
    }
    if f.standby_cluster() {
        return Err(
            "this is a standby cluster: its master replicates from the external primary (see /standby-leader)".into()
        );
    }
    if i.pg.up()?.in_recovery {
        return Err("PostgreSQL is still in recovery".into());
    }
    Ok(())
}

fn standby_leader(f: &Facts, i: &Inputs) -> Verdict {
    let db = f.own_db(i)?;
    if !f.is_master() || !f.standby_cluster() {
        return Err(format!("DB {} is not the master of a standby cluster", db.uid));
    }
    if !i.pg.up()?.in_recovery {
        return Err("PostgreSQL is not in recovery".into());
    }
    Ok(())
}

fn leader(f: &Facts) -> Verdict {
    f.fresh.clone()?;
    if f.is_master() {
        Ok(())
    } else {
        Err(format!("this keeper's DB is not the master (the master is {})", master_name(f)))
    }
}

/// A standby of the current master, streaming from it, within `max_lag`.
fn replica(f: &Facts, i: &Inputs, max_lag: Option<u64>) -> Verdict {
    let db = f.own_db(i)?;
    if f.is_master() {
        return Err(format!("DB {} is the master", db.uid));
    }
    let master = f.master.ok_or("the cluster has no master")?;
    let follows = db.spec.follow_config.as_ref().is_some_and(|fc| {
        fc.follow_type.as_ref().is_none_or(|t| *t == FollowType::Internal) && fc.db_uid == master.uid
    });
    if db.spec.role != Some(DbRole::Standby) || !follows {
        return Err(format!("DB {} is not assigned to follow the master DB {}", db.uid, master.uid));
    }
    let s = i.pg.up()?;
    if !s.in_recovery {
        return Err("PostgreSQL is not in recovery".into());
    }
    let r = s.receiver.as_ref().filter(|r| r.status == "streaming").ok_or_else(|| match &s.receiver {
        Some(r) => format!("the WAL receiver is {}, not streaming", r.status),
        None => "no WAL receiver runs: not streaming".to_string(),
    })?;
    let (host, port) = (&master.status.listen_address, &master.status.port);
    let sender_port = r.sender_port.map(|p| p.to_string());
    if r.sender_host.as_deref() != Some(host.as_str()) || sender_port.as_deref() != Some(port.as_str()) {
        return Err(format!(
            "streaming from {}:{}, not from the master at {host}:{port}",
            r.sender_host.as_deref().unwrap_or("?"),
            sender_port.as_deref().unwrap_or("?")
        ));
    }
    if let Some(max) = max_lag {
        let lag = replay_lag(s).ok_or("the replay or upstream position is unknown")?;
        if lag > max {
            return Err(format!("replay lag {lag} bytes is over the bound of {max} bytes"));
        }
    }
    Ok(())
}

fn synchronous(f: &Facts) -> bool {
    match (f.db, f.master) {
        (Some(d), Some(m)) => m.status.synchronous_standbys().contains(&d.uid),
        _ => false,
    }
}

fn readiness(f: &Facts, i: &Inputs, max_lag: Option<u64>) -> Verdict {
    let db = f.own_db(i)?;
    match f.role() {
        Some("master") if f.standby_cluster() => standby_leader(f, i),
        Some("master") => primary(f, i),
        Some(_) => replica(f, i, max_lag),
        None => Err(format!("DB {} has no role yet", db.uid)),
    }
}

/// The WAL this streaming standby knows of but has not replayed: the newest of the upstream's WAL end as its
/// sender last reported it (`pg_stat_wal_receiver.latest_end_lsn`) and of what it received, minus its replay
/// position (`pg_last_wal_replay_lsn()`), all read in one query. The same figure as the read-only port's.
pub fn replay_lag(s: &PgSample) -> Option<u64> {
    let replay = s.replay_lsn?;
    let newest = [s.receiver.as_ref().and_then(|r| r.latest_end_lsn), s.receive_lsn].into_iter().flatten().max()?;
    Some(newest.saturating_sub(replay))
}

fn master_name(f: &Facts) -> String {
    f.master.map_or("none".to_string(), |m| format!("DB {} of keeper {}", m.uid, m.spec.keeper_uid))
}

/// The verdict of `check` with `?lag=` bound `max_lag`.
pub fn check(check: Check, max_lag: Option<u64>, i: &Inputs) -> Answer {
    let f = Facts::of(i);
    let verdict = match check {
        Check::Primary => primary(&f, i),
        Check::StandbyLeader => standby_leader(&f, i),
        Check::Leader => leader(&f),
        Check::Replica => replica(&f, i, max_lag),
        Check::ReadOnly => primary(&f, i).or_else(|p| replica(&f, i, max_lag).map_err(|r| format!("{p}; {r}"))),
        Check::Synchronous => replica(&f, i, max_lag).and_then(|()| {
            if synchronous(&f) { Ok(()) } else { Err("not a synchronous standby of the master".into()) }
        }),
        Check::Asynchronous => replica(&f, i, max_lag)
            .and_then(|()| if synchronous(&f) { Err("a synchronous standby of the master".into()) } else { Ok(()) }),
        Check::Health => i.pg.up().map(|_| ()),
        Check::Liveness => liveness(i.loops, bound(&f)),
        Check::Readiness => readiness(&f, i, max_lag),
    };
    let mut body = member(&f, i);
    let (status, reason) = match verdict {
        Ok(()) => (200, None),
        Err(why) => (503, Some(why)),
    };
    body["check"] = json!({ "endpoint": check.path(), "passed": status == 200, "reason": reason });
    Answer { status, body }
}

/// `/status`: this member's document.
pub fn status(i: &Inputs) -> Answer {
    Answer { status: 200, body: member(&Facts::of(i), i) }
}

fn bound(f: &Facts) -> Duration {
    let spec = f.cd.map(|cd| cd.cluster.spec.clone()).unwrap_or_default();
    liveness_bound(spec.sleep_interval(), spec.request_timeout())
}

/// The member document (no password, no connection string).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Member<'a> {
    keeper_uid: &'a str,
    role: Option<&'static str>,
    db_uid: Option<&'a str>,
    synchronous: bool,
    cluster: Option<ClusterFacts<'a>>,
    postgres: PostgresFacts<'a>,
    loops: Vec<LoopFacts>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterFacts<'a> {
    uid: &'a str,
    role: String,
    master_keeper_uid: Option<&'a str>,
    master_db_uid: Option<&'a str>,
    data_age_seconds: f64,
    fresh: bool,
    proxy_timeout_seconds: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostgresFacts<'a> {
    running: bool,
    error: Option<&'a str>,
    local_db_uid: &'a str,
    in_recovery: Option<bool>,
    wal_position: Option<u64>,
    receive_position: Option<u64>,
    replay_position: Option<u64>,
    replay_lag: Option<u64>,
    wal_receiver: Option<&'a WalReceiver>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoopFacts {
    name: &'static str,
    seconds_since_heartbeat: f64,
    open_ended_action: Option<&'static str>,
}

fn member(f: &Facts, i: &Inputs) -> Value {
    let sample = i.pg.up().ok();
    let m = Member {
        keeper_uid: i.keeper_uid,
        role: if f.fresh.is_ok() { f.role() } else { None },
        db_uid: f.db.map(|d| d.uid.as_str()),
        synchronous: synchronous(f),
        cluster: i.cluster.map(|(cd, age)| ClusterFacts {
            uid: &cd.cluster.uid,
            role: cd.cluster.spec.role().to_string(),
            master_keeper_uid: f.master.map(|m| m.spec.keeper_uid.as_str()),
            master_db_uid: f.master.map(|m| m.uid.as_str()),
            data_age_seconds: age.as_secs_f64(),
            fresh: f.fresh.is_ok(),
            proxy_timeout_seconds: cd.cluster.spec.proxy_timeout().as_secs_f64(),
        }),
        postgres: PostgresFacts {
            running: sample.is_some(),
            error: match i.pg {
                PgObservation::Down(why) => Some(why),
                PgObservation::Up(_) => None,
            },
            local_db_uid: i.local_db,
            in_recovery: sample.map(|s| s.in_recovery),
            wal_position: sample.and_then(|s| if s.in_recovery { s.replay_lsn } else { s.current_lsn }),
            receive_position: sample.and_then(|s| s.receive_lsn),
            replay_position: sample.and_then(|s| s.replay_lsn),
            replay_lag: sample.filter(|s| s.in_recovery).and_then(replay_lag),
            wal_receiver: sample.and_then(|s| s.receiver.as_ref()),
        },
        loops: i
            .loops
            .iter()
            .map(|l| LoopFacts {
                name: l.which.name(),
                seconds_since_heartbeat: l.since_beat.as_secs_f64(),
                open_ended_action: l.open_ended.map(|(a, _)| a),
            })
            .collect(),
    };
    serde_json::to_value(m).unwrap_or_else(|e| json!({ "error": format!("encoding the member document: {e}") }))
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
