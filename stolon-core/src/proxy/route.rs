//! The pure route decision of one proxy check: from what was read in the store and this proxy's state to
//! what must be forwarded, what must be published, and whether the check succeeded.
//!
//! The steps follow stolon's proxy check (reference section 6, gating in 4.7):
//! a store error changes nothing and fails the check; no cluster data forwards nowhere; an unsupported
//! or invalid document forwards nowhere and fails the check; no master forwards nowhere *before*
//! announcing the generation; a known master is announced first (an announcement failure fails the
//! check) and forwarded to only when this proxy is in `enabledProxies`.

use super::messages as m;
use std::time::Duration;

use crate::cluster::{ClusterData, defaults};

/// What one check read from the store.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// The store could not be read (step 1).
    StoreError,
    /// The store holds no cluster data (step 3).
    Absent,
    /// The cluster data has an unsupported format version or cannot be decoded (step 4).
    Unreadable,
    /// The cluster data as read.
    Data(&'a ClusterData),
}

/// Check period and timeout, as advertised by the proxy and taken from the cluster spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Period of the safety-net check (`proxyCheckInterval`).
    pub check_interval: Duration,
    /// How long without a successful check before connections are dropped (`proxyTimeout`).
    pub timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            check_interval: defaults::PROXY_CHECK_INTERVAL.to_std_saturating(),
            timeout: defaults::PROXY_TIMEOUT.to_std_saturating(),
        }
    }
}

/// The master's advertised endpoint, still to be resolved (step 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEndpoint {
    /// `listenAddress` of the master DB (IP address or host name).
    pub host: String,
    /// `port` of the master DB, as advertised.
    pub port: String,
}

impl MasterEndpoint {
    /// `host:port`, with an IPv6 literal in brackets.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the proxy must do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Step 1: change nothing; the check failed.
    KeepAndFail {
        /// Why, for the logs.
        reason: String,
    },
    /// Steps 3 and 4: forward nowhere (closing every connection), publish nothing.
    Drop {
        /// Whether the check counts as successful (no cluster data: yes; unusable cluster data: no).
        check_ok: bool,
        /// Why, for the logs.
        reason: String,
    },
    /// Steps 6 and 7: forward nowhere first, then publish `generation` (a publish failure is ignored); adopt
    /// `timing` when the publish succeeded. The check succeeds.
    DropThenAnnounce {
        /// The proxy generation to report.
        generation: i64,
        /// The timeout to advertise.
        advertised_timeout: Duration,
        /// The timing to adopt after a successful publish.
        timing: Timing,
        /// Why, for the logs.
        reason: String,
    },
    /// Steps 8 to 10: resolve `master` (failure: forward nowhere, check OK), publish `generation` (failure:
    /// the check fails), adopt `timing`, then forward to the master when `enabled`, else nowhere.
    AnnounceThenRoute {
        /// The proxy generation to report.
        generation: i64,
        /// The timeout to advertise.
        advertised_timeout: Duration,
        /// The timing to adopt after a successful publish.
        timing: Timing,
        /// Where the master listens.
        master: MasterEndpoint,
        /// Whether this proxy is in `enabledProxies` (else it forwards nowhere).
        enabled: bool,
    },
}

/// Decides what proxy `uid`, currently using `current`, must do after reading `observed`.
pub fn plan(observed: Observation<'_>, uid: &str, current: Timing) -> Plan {
    let cd = match observed {
        Observation::StoreError => return Plan::KeepAndFail { reason: "cannot read cluster data".into() },
        Observation::Absent => return Plan::Drop { check_ok: true, reason: m::NO_CLUSTER_DATA.into() },
        Observation::Unreadable => {
            return Plan::Drop { check_ok: false, reason: "unsupported or undecodable cluster data".into() };
        }
        Observation::Data(cd) => cd,
    };
    if let Err(e) = cd.cluster.spec.validate() {
        return Plan::Drop { check_ok: false, reason: m::cluster_data_invalid(&e) };
    }
    let spec = &cd.cluster.spec;
    let timing = Timing { check_interval: spec.proxy_check_interval(), timeout: spec.proxy_timeout() };
    let advertised_timeout = current.timeout.max(timing.timeout);
    let proxy = &cd.proxy;
    let master_uid = &proxy.spec.master_db_uid;
    let master = (!master_uid.is_empty()).then(|| cd.dbs.get(master_uid)).flatten();
    let Some(db) = master else {
        let reason = m::NO_DB_OBJECT.to_string();
        return Plan::DropThenAnnounce { generation: proxy.generation, advertised_timeout, timing, reason };
    };
    Plan::AnnounceThenRoute {
        generation: proxy.generation,
        advertised_timeout,
        timing,
        master: MasterEndpoint { host: db.status.listen_address.clone(), port: db.status.port.clone() },
        enabled: proxy.spec.enabled_proxies.iter().any(|p| p == uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterInitMode, ClusterSpec, Db, DbStatus, Proxy, ProxySpec};
    use crate::duration::GoDuration;
    use crate::time::Timestamp;

    const ME: &str = "proxy1";

    fn data(master: &str, enabled: &[&str], generation: i64) -> ClusterData {
        let spec = ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() };
        let mut cd = ClusterData::new_initial("c1", spec, Timestamp::default());
        for (uid, port) in [("db1", "5433"), ("db2", "5434")] {
            let status = DbStatus { listen_address: "127.0.0.1".into(), port: port.into(), ..DbStatus::default() };
            cd.dbs.insert(uid.into(), Db { uid: uid.into(), status, ..Db::default() });
        }
        cd.proxy = Proxy {
            generation,
            spec: ProxySpec {
                master_db_uid: master.into(),
                enabled_proxies: enabled.iter().map(|s| s.to_string()).collect(),
            },
            ..Proxy::default()
        };
        cd
    }

    #[test]
    fn store_error_changes_nothing_and_fails() {
        assert!(matches!(plan(Observation::StoreError, ME, Timing::default()), Plan::KeepAndFail { .. }));
    }

    #[test]
    fn no_cluster_data_drops_and_succeeds() {
        let p = plan(Observation::Absent, ME, Timing::default());
        assert!(matches!(p, Plan::Drop { check_ok: true, .. }), "{p:?}");
    }

    #[test]
    fn unreadable_cluster_data_drops_and_fails() {
        let p = plan(Observation::Unreadable, ME, Timing::default());
        assert!(matches!(p, Plan::Drop { check_ok: false, .. }), "{p:?}");
    }

    #[test]
    fn invalid_spec_drops_and_fails() {
        let mut cd = data("db1", &[ME], 3);
        cd.cluster.spec.sleep_interval = Some(GoDuration::from_secs(-1));
        let p = plan(Observation::Data(&cd), ME, Timing::default());
        let want = "clusterdata validation failed: sleepInterval (-1s) must not be negative";
        assert!(matches!(&p, Plan::Drop { check_ok: false, reason } if reason == want), "{p:?}");
    }

    #[test]
    fn missing_proxy_object_announces_generation_zero() {
        let mut cd = data("db1", &[ME], 3);
        cd.proxy = Proxy::default();
        let p = plan(Observation::Data(&cd), ME, Timing::default());
        assert!(matches!(p, Plan::DropThenAnnounce { generation: 0, .. }), "{p:?}");
    }

    #[test]
    fn empty_master_drops_then_announces_the_generation() {
        let cd = data("", &[ME], 7);
        let p = plan(Observation::Data(&cd), ME, Timing::default());
        let want = "no db object available, closing connections to master";
        assert!(matches!(&p, Plan::DropThenAnnounce { generation: 7, reason, .. } if reason == want), "{p:?}");
    }

    #[test]
    fn unknown_master_db_drops_then_announces() {
        let cd = data("gone", &[ME], 8);
        let p = plan(Observation::Data(&cd), ME, Timing::default());
        let want = "no db object available, closing connections to master";
        assert!(matches!(&p, Plan::DropThenAnnounce { generation: 8, reason, .. } if reason == want), "{p:?}");
    }

    #[test]
    fn enabled_proxy_routes_to_the_master_endpoint() {
        let cd = data("db2", &["other", ME], 4);
        match plan(Observation::Data(&cd), ME, Timing::default()) {
            Plan::AnnounceThenRoute { generation, master, enabled, .. } => {
                assert_eq!(generation, 4);
                assert!(enabled);
                assert_eq!(master.host_port(), "127.0.0.1:5434");
            }
            p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn proxy_not_enabled_announces_but_does_not_route() {
        let cd = data("db1", &["other"], 4);
        let p = plan(Observation::Data(&cd), ME, Timing::default());
        assert!(matches!(p, Plan::AnnounceThenRoute { enabled: false, generation: 4, .. }), "{p:?}");
    }

    #[test]
    fn advertised_timeout_never_shrinks_below_the_current_one() {
        let mut cd = data("db1", &[ME], 1);
        cd.cluster.spec.proxy_timeout = Some(GoDuration::from_secs(3));
        cd.cluster.spec.proxy_check_interval = Some(GoDuration::from_secs(1));
        let current = Timing { check_interval: Duration::from_secs(5), timeout: Duration::from_secs(15) };
        match plan(Observation::Data(&cd), ME, current) {
            Plan::AnnounceThenRoute { advertised_timeout, timing, .. } => {
                assert_eq!(advertised_timeout, Duration::from_secs(15));
                assert_eq!(timing, Timing { check_interval: Duration::from_secs(1), timeout: Duration::from_secs(3) });
            }
            p => panic!("unexpected {p:?}"),
        }
        cd.cluster.spec.proxy_timeout = Some(GoDuration::from_secs(30));
        let small = Timing { check_interval: Duration::from_secs(1), timeout: Duration::from_secs(3) };
        match plan(Observation::Data(&cd), ME, small) {
            Plan::AnnounceThenRoute { advertised_timeout, .. } => {
                assert_eq!(advertised_timeout, Duration::from_secs(30))
            }
            p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn ipv6_master_address_is_bracketed() {
        let m = MasterEndpoint { host: "::1".into(), port: "5432".into() };
        assert_eq!(m.host_port(), "[::1]:5432");
    }
}
