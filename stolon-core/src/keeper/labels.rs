//! The keeper's role label (`stolon-role=master|standby`) on its own member, on stores that keep member labels
//! (Kubernetes: the keeper's pod), so that a Service can select the master or the standbys. The label follows
//! the role the cluster data gives this keeper; it is removed while the keeper has no DB. A label may be stale
//! (a dead pod, a keeper cut off from the store): Services that select by it also rely on the readiness probe
//! of the keeper API.

use std::sync::Arc;
use std::time::Duration;

use super::api::KeeperView;
use crate::cluster::{ClusterData, DbRole};
use crate::store::ClusterStore;

/// The label key.
pub const ROLE_LABEL: &str = "stolon-role";

/// How long to wait before retrying a failed update.
const RETRY: Duration = Duration::from_secs(1);

/// The label value for keeper `uid` in `cd`: `master` for the keeper of the master DB, `standby` for a standby
/// DB, none otherwise.
pub fn role_label(cd: &ClusterData, uid: &str) -> Option<&'static str> {
    let db = cd.db_of_keeper(uid)?;
    if db.uid == cd.cluster.status.master {
        Some("master")
    } else if db.spec.role == Some(DbRole::Standby) {
        Some("standby")
    } else {
        None
    }
}

/// Keeps the role label of keeper `uid` in step with the cluster data the keeper reads, until the store says
/// it keeps no member labels.
pub async fn label_loop(store: ClusterStore, uid: String, view: Arc<KeeperView>) {
    let mut reads = view.subscribe();
    // `None`: nothing applied yet (the first update also removes a label left by a previous role).
    let mut applied: Option<Option<&'static str>> = None;
    loop {
        let wanted = view.cluster().and_then(|s| role_label(&s.cd, &uid));
        if applied != Some(wanted) {
            match store.store().set_member_labels(&[(ROLE_LABEL, wanted)]).await {
                Ok(false) => return,
                Ok(true) => {
                    tracing::info!(label = ROLE_LABEL, role = wanted.unwrap_or("(none)"), "role label updated");
                    applied = Some(wanted);
                }
                Err(e) => {
                    tracing::warn!(error = %e, label = ROLE_LABEL, "cannot update the role label");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        if reads.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Db;

    #[test]
    fn label_follows_the_role_in_cluster_data() {
        let mut cd = ClusterData::default();
        for (uid, keeper, role) in [("d0", "k0", DbRole::Master), ("d1", "k1", DbRole::Standby)] {
            let mut db = Db { uid: uid.into(), ..Db::default() };
            db.spec.keeper_uid = keeper.into();
            db.spec.role = Some(role);
            cd.dbs.insert(uid.into(), db);
        }
        assert_eq!(role_label(&cd, "k0"), None, "no master elected yet");
        cd.cluster.status.master = "d0".into();
        assert_eq!(role_label(&cd, "k0"), Some("master"));
        assert_eq!(role_label(&cd, "k1"), Some("standby"));
        assert_eq!(role_label(&cd, "k2"), None, "no DB");
        cd.cluster.status.master = "d1".into();
        assert_eq!(role_label(&cd, "k1"), Some("master"), "a failover moves the label");
    }
}
