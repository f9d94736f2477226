//! What the assigned DB's spec means for the local instance (pure): its PostgreSQL parameters, pg_hba
//! lines, standby recovery options and replication slots.

use std::collections::BTreeSet;

use super::plan::KeeperSettings;
use crate::cluster::{ClusterData, Db, DbLocalState, DbRole, FollowType, PgParameters, StandbySettings};
use crate::postgres::config::{
    ParameterInputs, RecoveryMode, RecoveryOptions, desired_parameters, stolon_name, synchronous_standby_names,
};
use crate::postgres::hba::{AuthMethod, HbaInputs, hba_lines};
use crate::postgres::replication::conninfo_value;

/// The parameters of `db` for this keeper (`with_init` = include the init parameters when the spec asks).
pub fn db_parameters(s: &KeeperSettings, db: &Db, local: &DbLocalState, with_init: bool) -> PgParameters {
    let is_master = db.spec.role == Some(DbRole::Master);
    desired_parameters(&ParameterInputs {
        init_parameters: if with_init && db.spec.include_config { local.init_pg_parameters.clone() } else { None },
        spec_parameters: db.spec.pg_parameters.clone(),
        major: s.pg_major,
        listen_address: s.listen_address.clone(),
        port: s.port,
        max_standbys: db.spec.max_standbys,
        additional_wal_senders: db.spec.additional_wal_senders,
        use_pgrewind: db.spec.use_pgrewind,
        synchronous_standby_names: synchronous_standby_names(
            is_master && db.spec.synchronous_replication,
            db.spec.synchronous_standbys(),
            db.spec.external_synchronous_standbys(),
        ),
    })
}

/// Whether `db` is master-type (master, or a standby following an external primary).
fn master_type(db: &Db) -> bool {
    match db.spec.role {
        Some(DbRole::Master) => true,
        Some(DbRole::Standby) => {
            db.spec.follow_config.as_ref().and_then(|f| f.follow_type.clone()) == Some(FollowType::External)
        }
        _ => false,
    }
}

/// pg_hba lines for `db`.
pub fn db_hba(s: &KeeperSettings, cd: &ClusterData, db: &Db, restricted: bool) -> Vec<String> {
    hba_lines(&HbaInputs {
        su_user: s.su_user.clone(),
        su_auth: s.su_auth,
        repl_user: s.repl_user.clone(),
        repl_auth: s.repl_auth,
        access_mode: cd.cluster.spec.default_su_repl_access_mode(),
        master_type: master_type(db),
        other_db_addresses: cd
            .dbs
            .values()
            .filter(|d| d.uid != db.uid)
            .map(|d| d.status.listen_address.clone())
            .collect(),
        pg_hba: db.spec.pg_hba.clone(),
        restricted,
    })
}

/// `primary_conninfo` and slot to follow `followed` as `my_db`.
pub fn internal_standby_settings(s: &KeeperSettings, followed: &Db, my_db: &str) -> StandbySettings {
    let mut conninfo = format!(
        "user={} host={} port={} application_name={} sslmode=prefer",
        conninfo_value(&s.repl_user),
        conninfo_value(&followed.status.listen_address),
        conninfo_value(&followed.status.port),
        conninfo_value(&stolon_name(my_db)),
    );
    if s.repl_auth != AuthMethod::Trust {
        if let Some(p) = &s.repl_password {
            conninfo.push_str(&format!(" password={}", conninfo_value(p)));
        }
    }
    StandbySettings {
        primary_conninfo: conninfo,
        primary_slot_name: stolon_name(my_db),
        recovery_min_apply_delay: String::new(),
    }
}

/// The standby recovery options of `db` (internal: follow the DB of `followConfig.dbuid`; external: the
/// spec's standby and archive settings). `Err` names what is missing.
pub fn standby_recovery(s: &KeeperSettings, cd: &ClusterData, db: &Db) -> Result<RecoveryOptions, String> {
    let fc = db.spec.follow_config.as_ref().ok_or("standby DB without followConfig")?;
    match fc.follow_type.clone() {
        Some(FollowType::External) => Ok(RecoveryOptions::new(
            RecoveryMode::Standby,
            fc.standby_settings.as_ref(),
            fc.archive_recovery_settings.as_ref(),
            None,
        )),
        _ => {
            let followed =
                cd.dbs.get(&fc.db_uid).ok_or_else(|| format!("followed db {:?} is not in cluster data", fc.db_uid))?;
            if followed.status.listen_address.is_empty() {
                return Err(format!("followed db {:?} has no address yet", fc.db_uid));
            }
            let ss = internal_standby_settings(s, followed, &db.uid);
            Ok(RecoveryOptions::new(RecoveryMode::Standby, Some(&ss), None, None))
        }
    }
}

/// Slots to drop and to create so that the `stolon_` slots are exactly `wanted`; others are never touched.
pub fn slot_changes(existing: &BTreeSet<String>, wanted: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let drop = existing.iter().filter(|s| s.starts_with("stolon_") && !wanted.contains(*s)).cloned().collect();
    let create = wanted.iter().filter(|s| !existing.contains(*s)).cloned().collect();
    (drop, create)
}

/// Slots a DB must have: one per follower (except itself) plus the additional ones, all `stolon_`-prefixed.
pub fn wanted_slots(db: &Db) -> BTreeSet<String> {
    db.spec
        .followers()
        .iter()
        .filter(|f| **f != db.uid)
        .chain(db.spec.additional_replication_slots.as_deref().unwrap_or_default())
        .map(|n| stolon_name(n))
        .collect()
}
