//! pg_hba.conf generation (reference 5.7), pure.

use std::net::IpAddr;

use crate::cluster::SuReplAccessMode;

/// Authentication method of the superuser or replication user (`--pg-su-auth-method`, `--pg-repl-auth-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Password (md5 or SCRAM, as PostgreSQL negotiates with `md5` in pg_hba).
    Md5,
    /// No password.
    Trust,
}

impl AuthMethod {
    /// The pg_hba method name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        }
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "md5" => Ok(AuthMethod::Md5),
            "trust" => Ok(AuthMethod::Trust),
            other => Err(format!("auth method {other:?} is not supported (md5 or trust)")),
        }
    }
}

/// Everything pg_hba.conf depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaInputs {
    /// Superuser name and method.
    pub su_user: String,
    /// Superuser auth method.
    pub su_auth: AuthMethod,
    /// Replication user name.
    pub repl_user: String,
    /// Replication auth method.
    pub repl_auth: AuthMethod,
    /// `defaultSUReplAccessMode`.
    pub access_mode: SuReplAccessMode,
    /// Whether this DB is master-type (master, or head of a standby cluster).
    pub master_type: bool,
    /// Advertised addresses of the other DBs (used in strict mode).
    pub other_db_addresses: Vec<String>,
    /// The spec's `pgHBA` lines (`None` = default client rules).
    pub pg_hba: Option<Vec<String>>,
    /// Restart protection: only internal rules, no client rules (reference 4.6).
    pub restricted: bool,
}

/// Host mask of one address: `/32` for IPv4, `/128` for IPv6; names are used as they are.
fn host_with_mask(addr: &str) -> String {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => format!("{a}/32"),
        Ok(IpAddr::V6(a)) => format!("{a}/128"),
        Err(_) => addr.to_string(),
    }
}

/// The pg_hba.conf lines. Differences from stolon (reference 10 item 23): in strict mode superuser lines use
/// the superuser's method (stolon used the replication one) and IPv6 addresses get a `/128` mask.
pub fn hba_lines(i: &HbaInputs) -> Vec<String> {
    let su = i.su_auth.as_str();
    let repl = i.repl_auth.as_str();
    let mut lines =
        vec![format!("local postgres {} {su}", i.su_user), format!("local replication {} {repl}", i.repl_user)];
    match i.access_mode {
        SuReplAccessMode::Strict => {
            if i.master_type {
                let mut addrs = i.other_db_addresses.clone();
                addrs.sort();
                addrs.dedup();
                for a in addrs.iter().filter(|a| !a.is_empty()) {
                    let h = host_with_mask(a);
                    lines.push(format!("host all {} {h} {su}", i.su_user));
                    lines.push(format!("host replication {} {h} {repl}", i.repl_user));
                }
            }
        }
        _ => {
            lines.push(format!("host all {} 0.0.0.0/0 {su}", i.su_user));
            lines.push(format!("host all {} ::0/0 {su}", i.su_user));
            lines.push(format!("host replication {} 0.0.0.0/0 {repl}", i.repl_user));
            lines.push(format!("host replication {} ::0/0 {repl}", i.repl_user));
        }
    }
    if !i.restricted {
        match &i.pg_hba {
            Some(user) => lines.extend(user.iter().cloned()),
            None => {
                lines.push("host all all 0.0.0.0/0 md5".into());
                lines.push("host all all ::0/0 md5".into());
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> HbaInputs {
        HbaInputs {
            su_user: "su".into(),
            su_auth: AuthMethod::Md5,
            repl_user: "repl".into(),
            repl_auth: AuthMethod::Trust,
            access_mode: SuReplAccessMode::All,
            master_type: true,
            other_db_addresses: vec!["10.0.0.2".into(), "fd00::1".into()],
            pg_hba: None,
            restricted: false,
        }
    }

    #[test]
    fn mode_all_with_default_client_rules() {
        assert_eq!(
            hba_lines(&inputs()),
            [
                "local postgres su md5",
                "local replication repl trust",
                "host all su 0.0.0.0/0 md5",
                "host all su ::0/0 md5",
                "host replication repl 0.0.0.0/0 trust",
                "host replication repl ::0/0 trust",
                "host all all 0.0.0.0/0 md5",
                "host all all ::0/0 md5",
            ]
        );
    }

    #[test]
    fn strict_mode_only_on_the_master_and_user_rules() {
        let mut i = inputs();
        i.access_mode = SuReplAccessMode::Strict;
        i.pg_hba = Some(vec!["host all app 10.1.0.0/16 md5".into()]);
        assert_eq!(
            hba_lines(&i)[2..],
            [
                "host all su 10.0.0.2/32 md5",
                "host replication repl 10.0.0.2/32 trust",
                "host all su fd00::1/128 md5",
                "host replication repl fd00::1/128 trust",
                "host all app 10.1.0.0/16 md5",
            ]
        );
        i.master_type = false;
        assert_eq!(hba_lines(&i).len(), 3);
        i.pg_hba = Some(vec![]);
        assert_eq!(hba_lines(&i).len(), 2);
    }

    #[test]
    fn restricted_drops_client_rules() {
        let mut i = inputs();
        i.restricted = true;
        let l = hba_lines(&i);
        assert_eq!(l.len(), 6);
        assert!(!l.iter().any(|x| x.contains(" all all ")));
    }
}
