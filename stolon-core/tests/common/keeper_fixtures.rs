//! Fixtures shared by the keeper's planner tests (`keeper_plan`, `keeper_log_messages`): keeper k1 with its
//! settings and boot UUID, DBs, and the cluster data around them.

use stolon_core::cluster::{
    ClusterData, ClusterSpec, Db, DbInitMode, DbLocalState, DbRole, DbSpec, DbStatus, FollowConfig, FollowType, Keeper,
    KeeperStatus,
};
use stolon_core::keeper::plan::{KeeperSettings, Observed};
use stolon_core::postgres::AuthMethod;
use stolon_core::time::Timestamp;

pub const BOOT: &str = "boot-1";

pub fn settings() -> KeeperSettings {
    KeeperSettings {
        uid: "k1".into(),
        su_user: "su".into(),
        su_auth: AuthMethod::Md5,
        su_password: Some("supw".into()),
        repl_user: "repl".into(),
        repl_auth: AuthMethod::Md5,
        repl_password: Some("replpw".into()),
        listen_address: "10.0.0.1".into(),
        port: 5432,
        pg_major: Some(15),
    }
}

pub fn db(uid: &str, keeper: &str, role: DbRole, init: DbInitMode) -> Db {
    Db {
        uid: uid.into(),
        generation: 3,
        spec: DbSpec {
            keeper_uid: keeper.into(),
            max_standbys: 20,
            additional_wal_senders: 5,
            init_mode: Some(init),
            role: Some(role),
            ..Default::default()
        },
        status: DbStatus {
            listen_address: format!("10.0.0.{}", keeper.len()),
            port: "5432".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Cluster data with keeper k1 (boot UUID `BOOT`), its DB d1 and a master d0 on k0 when d1 is a standby.
pub fn cd_with(d1: Db) -> ClusterData {
    let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), Timestamp::now());
    for (k, boot) in [("k1", BOOT), ("k0", "other")] {
        cd.keepers.insert(
            k.into(),
            Keeper {
                uid: k.into(),
                status: KeeperStatus { boot_uuid: boot.into(), ..Default::default() },
                ..Default::default()
            },
        );
    }
    if d1.spec.role == Some(DbRole::Standby) {
        let mut d0 = db("d0", "k0", DbRole::Master, DbInitMode::None);
        d0.status.listen_address = "10.0.0.9".into();
        d0.status.system_id = "42".into();
        d0.spec.followers = Some(vec!["d1".into()]);
        cd.dbs.insert("d0".into(), d0);
        cd.cluster.status.master = "d0".into();
        let mut d1 = d1;
        d1.spec.follow_config =
            Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: "d0".into(), ..Default::default() });
        cd.dbs.insert(d1.uid.clone(), d1);
    } else {
        cd.cluster.status.master = d1.uid.clone();
        cd.dbs.insert(d1.uid.clone(), d1);
    }
    cd
}

pub fn local(uid: &str, generation: i64) -> DbLocalState {
    DbLocalState { uid: uid.into(), generation, ..DbLocalState::default() }
}

pub fn observed(role: DbRole, running: bool) -> Observed {
    Observed {
        initialized: role != DbRole::Undefined,
        local_role: Some(role),
        running,
        system_id: Some("42".into()),
        in_sync_standbys: None,
        clean_shutdown: false,
    }
}
