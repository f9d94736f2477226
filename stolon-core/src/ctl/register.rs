//! `stolonctl register`: keep a service discovery backend (Consul) in step with the cluster's healthy DBs.
//!
//! The decision is pure: [`desired_services`] derives what should be registered from the cluster data, and
//! [`diff_services`] compares it with what is registered. [`super::consul::ConsulAgent`] does the HTTP.

use std::collections::BTreeMap;

use crate::cluster::ClusterData;

/// Interval of the TCP health check registered with each service.
pub const CHECK_INTERVAL: &str = "10s";

/// One service registration: a healthy DB of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Service name: the cluster name.
    pub name: String,
    /// Service ID: the DB UID.
    pub id: String,
    /// The DB's advertised address.
    pub address: String,
    /// The DB's advertised port.
    pub port: u16,
    /// Master or standby tags.
    pub tags: Vec<String>,
    /// Whether this DB is the master.
    pub is_master: bool,
}

impl ServiceInfo {
    /// The `host:port` the TCP health check connects to (IPv6 addresses bracketed).
    pub fn check_address(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// Whether two registrations are the same for discovery purposes (name, ID, address, port and tags,
    /// tags in order).
    pub fn same_registration(&self, other: &ServiceInfo) -> bool {
        self.name == other.name
            && self.id == other.id
            && self.address == other.address
            && self.port == other.port
            && self.tags == other.tags
    }
}

/// What to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Service name (the cluster name).
    pub service_name: String,
    /// Also register the master (`--register-master`).
    pub register_master: bool,
    /// Tags of the master (`--tag-master-as`).
    pub master_tags: Vec<String>,
    /// Tags of the standbys (`--tag-slave-as`).
    pub standby_tags: Vec<String>,
}

/// Splits a comma-separated tag list (`master,primary`).
pub fn parse_tags(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

/// Why the wanted registrations could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredServicesError {
    /// A healthy DB advertises a port that is not a number.
    #[error("invalid database port {port:?} for {service} with uid {db}")]
    InvalidPort {
        /// The service name.
        service: String,
        /// The DB UID.
        db: String,
        /// The advertised port.
        port: String,
    },
}

/// The registrations wanted for `cd`: every healthy DB, the master only with `register_master`. Keyed by
/// service ID.
pub fn desired_services(
    cd: &ClusterData,
    opts: &RegisterOptions,
) -> Result<BTreeMap<String, ServiceInfo>, DesiredServicesError> {
    let mut out = BTreeMap::new();
    for (uid, db) in cd.dbs.iter().filter(|(_, db)| db.status.healthy) {
        let is_master = *uid == cd.cluster.status.master;
        if is_master && !opts.register_master {
            continue;
        }
        let port = db.status.port.parse::<u16>().map_err(|_| DesiredServicesError::InvalidPort {
            service: opts.service_name.clone(),
            db: uid.clone(),
            port: db.status.port.clone(),
        })?;
        let tags = if is_master { opts.master_tags.clone() } else { opts.standby_tags.clone() };
        let info = ServiceInfo {
            name: opts.service_name.clone(),
            id: uid.clone(),
            address: db.status.listen_address.clone(),
            port,
            tags,
            is_master,
        };
        out.insert(uid.clone(), info);
    }
    Ok(out)
}

/// Registrations to remove and to add so that the registered set becomes the wanted one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDiff {
    /// Registered services to deregister (gone, or changed: they are registered again).
    pub deregister: Vec<ServiceInfo>,
    /// Wanted services to register (new, or changed).
    pub register: Vec<ServiceInfo>,
}

impl ServiceDiff {
    /// True when nothing has to change.
    pub fn is_empty(&self) -> bool {
        self.deregister.is_empty() && self.register.is_empty()
    }
}

/// Compares wanted and registered services (both keyed by service ID), in ID order.
pub fn diff_services(
    wanted: &BTreeMap<String, ServiceInfo>,
    registered: &BTreeMap<String, ServiceInfo>,
) -> ServiceDiff {
    let mut diff = ServiceDiff::default();
    for (id, have) in registered {
        match wanted.get(id) {
            Some(want) if want.same_registration(have) => {}
            _ => diff.deregister.push(have.clone()),
        }
    }
    for (id, want) in wanted {
        match registered.get(id) {
            Some(have) if want.same_registration(have) => {}
            _ => diff.register.push(want.clone()),
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Db;

    fn opts(register_master: bool) -> RegisterOptions {
        RegisterOptions {
            service_name: "pg".into(),
            register_master,
            master_tags: parse_tags("master,primary"),
            standby_tags: parse_tags("slave"),
        }
    }

    fn cd() -> ClusterData {
        let mut cd = ClusterData::default();
        for (uid, healthy, port) in [("m", true, "5432"), ("s1", true, "5433"), ("s2", false, "5434")] {
            let mut db = Db { uid: uid.into(), ..Db::default() };
            db.status.healthy = healthy;
            db.status.listen_address = "10.0.0.1".into();
            db.status.port = port.into();
            cd.dbs.insert(uid.into(), db);
        }
        cd.cluster.status.master = "m".into();
        cd
    }

    fn svc(id: &str, port: u16, tags: &[&str]) -> ServiceInfo {
        ServiceInfo {
            name: "pg".into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            is_master: false,
        }
    }

    #[test]
    fn healthy_standbys_only_unless_master_asked() {
        let d = desired_services(&cd(), &opts(false)).unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), ["s1"]);
        assert_eq!(d["s1"].tags, ["slave"]);
        assert_eq!(d["s1"].check_address(), "10.0.0.1:5433");
        let d = desired_services(&cd(), &opts(true)).unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), ["m", "s1"]);
        assert_eq!(d["m"].tags, ["master", "primary"]);
        assert!(d["m"].is_master);
    }

    #[test]
    fn invalid_port_is_an_error_naming_the_db() {
        let mut cd = cd();
        cd.dbs.get_mut("s1").unwrap().status.port = "x".into();
        let e = desired_services(&cd, &opts(false)).unwrap_err();
        assert!(e.to_string().contains("s1") && e.to_string().contains("\"x\""), "{e}");
    }

    #[test]
    fn diff_adds_removes_and_replaces_changed() {
        let wanted: BTreeMap<_, _> =
            [("a", svc("a", 1, &["slave"])), ("b", svc("b", 2, &["slave"])), ("c", svc("c", 3, &["master"]))]
                .map(|(k, v)| (k.to_string(), v))
                .into();
        let registered: BTreeMap<_, _> =
            [("a", svc("a", 1, &["slave"])), ("b", svc("b", 9, &["slave"])), ("z", svc("z", 4, &["slave"]))]
                .map(|(k, v)| (k.to_string(), v))
                .into();
        let diff = diff_services(&wanted, &registered);
        let ids = |v: &[ServiceInfo]| v.iter().map(|s| format!("{}:{}", s.id, s.port)).collect::<Vec<_>>();
        assert_eq!(ids(&diff.deregister), ["b:9", "z:4"]);
        assert_eq!(ids(&diff.register), ["b:2", "c:3"]);
        assert!(diff_services(&wanted, &wanted).is_empty());
    }

    #[test]
    fn tag_order_and_address_count_as_changes() {
        let a = svc("a", 1, &["x", "y"]);
        assert!(!a.same_registration(&svc("a", 1, &["y", "x"])));
        assert!(!a.same_registration(&ServiceInfo { address: "10.0.0.2".into(), ..a.clone() }));
        assert!(a.same_registration(&ServiceInfo { is_master: true, ..a.clone() }));
        assert_eq!(ServiceInfo { address: "::1".into(), ..a }.check_address(), "[::1]:1");
    }
}
