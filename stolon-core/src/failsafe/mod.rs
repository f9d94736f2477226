//! Failsafe mode (cluster spec `failsafeMode`, off by default): during a store outage the proxies keep
//! forwarding to the master while its keeper confirms, through the keeper API, that it still runs the master
//! and that the keeper of every other DB recently confirmed following it; otherwise they fence as without
//! failsafe mode. A standby told to become master stops confirming at once and waits out its last
//! confirmation's window before it promotes. The safety argument is in docs/reliability.md.
//!
//! [`decide`] holds the pure decisions, [`keeper`] the keeper's state and collector loop, [`proxy`] the
//! proxy's side.

pub mod decide;
pub mod keeper;
pub mod proxy;

pub use keeper::FailsafeKeeper;
pub use proxy::{FailsafeProxy, Trust};

/// Why failsafe mode cannot work with these keepers (`None`: every keeper publishes an `apiURL`): the keepers
/// whose keeper info has no `apiURL`, for the refusal of `stolonctl update` and the sentinel's error.
pub fn missing_api(infos: &crate::store::Infos<crate::cluster::KeeperInfo>) -> Option<String> {
    let missing: Vec<&str> =
        infos.valid.iter().filter(|(_, i)| i.api_url.is_empty()).map(|(u, _)| u.as_str()).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "failsafeMode needs the keeper API on every keeper (--api-listen-address); these keepers publish no \
             apiURL: {}",
            missing.join(", ")
        )
    })
}

/// The sentinel's error when failsafe mode is on in `cd` but some keeper has no API (`None`: nothing wrong).
pub fn sentinel_refusal(
    cd: &crate::cluster::ClusterData,
    infos: &crate::store::Infos<crate::cluster::KeeperInfo>,
) -> Option<String> {
    if cd.cluster.spec.failsafe_mode != Some(true) {
        return None;
    }
    missing_api(infos).map(|m| format!("{m}: proxies fence during a store outage as without failsafe mode"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterData, ClusterSpec, KeeperInfo};
    use crate::store::Infos;
    use crate::time::Timestamp;

    fn infos(urls: &[(&str, &str)]) -> Infos<KeeperInfo> {
        let mut i = Infos { valid: Default::default(), invalid: Vec::new() };
        for (uid, url) in urls {
            i.valid.insert(
                uid.to_string(),
                KeeperInfo { uid: uid.to_string(), api_url: url.to_string(), ..KeeperInfo::default() },
            );
        }
        i
    }

    #[test]
    fn failsafe_needs_every_keepers_api() {
        assert_eq!(missing_api(&infos(&[("k0", "http://a:8008"), ("k1", "https://b:8008")])), None);
        let m = missing_api(&infos(&[("k0", "http://a:8008"), ("k1", ""), ("k2", "")])).unwrap();
        assert!(m.contains("k1, k2") && m.contains("--api-listen-address"), "{m}");
        let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), Timestamp::default());
        let without = infos(&[("k0", "")]);
        assert_eq!(sentinel_refusal(&cd, &without), None, "failsafe mode off: nothing to say");
        cd.cluster.spec.failsafe_mode = Some(true);
        assert!(sentinel_refusal(&cd, &without).unwrap().contains("k0"));
        assert_eq!(sentinel_refusal(&cd, &infos(&[("k0", "http://a:8008")])), None);
    }
}
