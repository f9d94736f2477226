//! Configuration of one instance: the parameter set of reference 5.4, recovery parameters, and the files
//! (`postgresql.conf` or the temporary one, `pg_hba.conf`, signal files), all written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{PgError, PgResult};
use super::os_user::OsUser;
use crate::cluster::{ArchiveRecoverySettings, PgParameters, RecoveryTargetSettings, StandbySettings};

/// Directory of the unix sockets of every keeper-managed instance (stolon's choice, kept for compatibility).
pub const SOCKET_DIR: &str = "/tmp";
/// Temporary configuration used while initializing: includes `postgresql.conf`, then the stolon parameters.
pub const TEMP_CONF_FILE: &str = "stolon-temp-postgresql.conf";
/// Main configuration file.
pub const CONF_FILE: &str = "postgresql.conf";
/// Authentication file.
pub const HBA_FILE: &str = "pg_hba.conf";
/// `ALTER SYSTEM` target, neutralised by the keeper.
pub const AUTO_CONF_FILE: &str = "postgresql.auto.conf";
/// Presence makes PG >= 12 start as a standby.
pub const STANDBY_SIGNAL: &str = "standby.signal";
/// Presence makes PG >= 12 start in targeted archive recovery.
pub const RECOVERY_SIGNAL: &str = "recovery.signal";

/// Parameters the keeper owns; never reported back to the sentinel (reference 5.4), plus
/// `allow_alter_system` which stolon-rs sets on PG >= 17.
pub const MANAGED_PARAMETERS: &[&str] = &[
    "unix_socket_directories",
    "wal_keep_segments",
    "wal_keep_size",
    "hot_standby",
    "listen_addresses",
    "port",
    "max_replication_slots",
    "max_wal_senders",
    "wal_log_hints",
    "synchronous_standby_names",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_min_apply_delay",
    "restore_command",
    "recovery_target_timeline",
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_action",
    "allow_alter_system",
];

/// Everything the parameter set depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterInputs {
    /// Parameters captured at initialization (used only while the DB spec includes the previous config).
    pub init_parameters: Option<PgParameters>,
    /// The DB spec's `pgParameters`.
    pub spec_parameters: PgParameters,
    /// Binary major version (`None` if unknown).
    pub major: Option<u32>,
    /// `--pg-listen-address`.
    pub listen_address: String,
    /// `--pg-port`.
    pub port: u16,
    /// DB spec `maxStandbys`.
    pub max_standbys: u16,
    /// DB spec `additionalWalSenders`.
    pub additional_wal_senders: u16,
    /// DB spec `usePgrewind`.
    pub use_pgrewind: bool,
    /// Value of `synchronous_standby_names` (see [`synchronous_standby_names`]).
    pub synchronous_standby_names: String,
}

/// The final parameter set: init parameters, overridden by the spec's, overridden by the mandatory ones.
pub fn desired_parameters(i: &ParameterInputs) -> PgParameters {
    let mut p: PgParameters = i.init_parameters.clone().unwrap_or_default();
    p.extend(i.spec_parameters.iter().map(|(k, v)| (k.clone(), v.clone())));
    let user_wal_level = i.spec_parameters.get("wal_level").map(String::as_str);
    let user_wal_keep_size = i.spec_parameters.get("wal_keep_size").cloned();
    let user_wal_keep_segments = i.spec_parameters.get("wal_keep_segments").and_then(|v| v.trim().parse::<u64>().ok());
    let set = |p: &mut PgParameters, k: &str, v: String| {
        p.insert(k.to_string(), v);
    };
    set(&mut p, "unix_socket_directories", SOCKET_DIR.to_string());
    set(&mut p, "hot_standby", "on".into());
    let wal_level = match (user_wal_level, i.major) {
        (Some("logical"), _) => "logical",
        (_, Some(_)) => "replica",
        (_, None) => "hot_standby",
    };
    set(&mut p, "wal_level", wal_level.into());
    match i.major {
        Some(m) if m >= 13 => {
            p.remove("wal_keep_segments");
            set(&mut p, "wal_keep_size", user_wal_keep_size.unwrap_or_else(|| "128".into()));
        }
        _ => {
            p.remove("wal_keep_size");
            set(&mut p, "wal_keep_segments", user_wal_keep_segments.unwrap_or(0).max(8).to_string());
        }
    }
    set(&mut p, "listen_addresses", i.listen_address.clone());
    set(&mut p, "port", i.port.to_string());
    set(&mut p, "max_replication_slots", i.max_standbys.to_string());
    let senders = 2 * u32::from(i.max_standbys) + 2 + u32::from(i.additional_wal_senders);
    set(&mut p, "max_wal_senders", senders.to_string());
    if i.use_pgrewind {
        set(&mut p, "wal_log_hints", "on".into());
    }
    set(&mut p, "synchronous_standby_names", i.synchronous_standby_names.clone());
    if i.major.is_some_and(|m| m >= 17) {
        set(&mut p, "allow_alter_system", "off".into());
    }
    p
}

/// The stolon name of a DB or slot: `stolon_<uid>`.
pub fn stolon_name(uid: &str) -> String {
    format!("stolon_{uid}")
}

/// `synchronous_standby_names` for a master: `stolon_<uid>` per sync standby plus the external names; with
/// more than one name `N (a,b,...)` where N is the total count (all must acknowledge); empty when disabled.
pub fn synchronous_standby_names(enabled: bool, standbys: &[String], external: &[String]) -> String {
    if !enabled {
        return String::new();
    }
    let names: Vec<String> = standbys.iter().map(|u| stolon_name(u)).chain(external.iter().cloned()).collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        n => format!("{n} ({})", names.join(",")),
    }
}

/// How the instance must start with respect to recovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// A primary: no signal file.
    #[default]
    None,
    /// A standby (`standby.signal`).
    Standby,
    /// Targeted archive recovery, then promotion (`recovery.signal`).
    Recovery,
}

/// Recovery mode plus its parameters; compared to decide whether a running standby must restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Signal-file mode.
    pub mode: RecoveryMode,
    /// Recovery parameters appended to the configuration.
    pub parameters: BTreeMap<String, String>,
}

impl RecoveryOptions {
    /// No recovery (a primary).
    pub fn none() -> Self {
        RecoveryOptions::default()
    }

    /// Recovery options from the standby, archive and target settings (reference 5.3).
    pub fn new(
        mode: RecoveryMode,
        standby: Option<&StandbySettings>,
        archive: Option<&ArchiveRecoverySettings>,
        target: Option<&RecoveryTargetSettings>,
    ) -> Self {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                p.insert(k.to_string(), v.to_string());
            }
        };
        if let Some(s) = standby {
            put("primary_conninfo", &s.primary_conninfo);
            put("primary_slot_name", &s.primary_slot_name);
            put("recovery_min_apply_delay", &s.recovery_min_apply_delay);
        }
        if let Some(a) = archive {
            put("restore_command", &a.restore_command);
        }
        match target {
            None => put("recovery_target_timeline", "latest"),
            Some(t) => {
                put("recovery_target", &t.recovery_target);
                put("recovery_target_lsn", &t.recovery_target_lsn);
                put("recovery_target_name", &t.recovery_target_name);
                put("recovery_target_time", &t.recovery_target_time);
                put("recovery_target_xid", &t.recovery_target_xid);
                put("recovery_target_timeline", &t.recovery_target_timeline);
                put("recovery_target_action", "promote");
            }
        }
        RecoveryOptions { mode, parameters: p }
    }
}

/// Quotes a configuration value: single quotes doubled and backslashes doubled, so that PostgreSQL reads
/// back exactly `value` (stolon did not escape backslashes nor recovery values: reference 10 item 22).
pub fn quote_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Renders a configuration file: an optional include line, then `name = 'value'` lines in name order, then
/// the recovery parameters (when the mode is not none), also in name order and quoted.
pub fn render_conf(include: Option<&str>, params: &PgParameters, recovery: &RecoveryOptions) -> String {
    let mut out = String::from("# Generated by stolon-rs keeper: do not edit, changes are overwritten.\n");
    if let Some(inc) = include {
        out.push_str(&format!("include {}\n", quote_value(inc)));
    }
    for (k, v) in params {
        out.push_str(&format!("{k} = {}\n", quote_value(v)));
    }
    if recovery.mode != RecoveryMode::None {
        for (k, v) in &recovery.parameters {
            out.push_str(&format!("{k} = {}\n", quote_value(v)));
        }
    }
    out
}

/// Writes `path` atomically: temporary file in the same directory, fsync, mode 0600, owner, rename, then
/// fsync of the directory.
pub fn write_atomic(path: &Path, contents: &[u8], owner: Option<&OsUser>) -> PgResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| PgError::io("create", &tmp, e))?;
        f.write_all(contents).map_err(|e| PgError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| PgError::io("fsync", &tmp, e))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| PgError::io("chmod", &tmp, e))?;
        if let Some(u) = owner {
            u.chown(&tmp)?;
        }
        std::fs::rename(&tmp, path).map_err(|e| PgError::io("rename", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `postgresql.auto.conf` with a symlink to `/dev/null` so that `ALTER SYSTEM` settings never take
/// effect (PG >= 17 additionally gets `allow_alter_system = off`). Done before every start and reload.
pub fn neutralise_auto_conf(pgdata: &Path) -> PgResult<()> {
    let path = pgdata.join(AUTO_CONF_FILE);
    if std::fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null")) {
        return Ok(());
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PgError::io("remove", path, e)),
    }
    std::os::unix::fs::symlink("/dev/null", &path).map_err(|e| PgError::io("symlink", path, e))
}

/// Removes the `/dev/null` symlink (pg_rewind copies the file from the source and fails on it).
pub fn remove_auto_conf_symlink(pgdata: &Path) -> PgResult<()> {
    let path = pgdata.join(AUTO_CONF_FILE);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&path).map_err(|e| PgError::io("remove", path, e))?;
    }
    Ok(())
}

/// Which main configuration file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfTarget {
    /// `postgresql.conf` (normal operation).
    Main,
    /// `stolon-temp-postgresql.conf`, including the existing `postgresql.conf` (initialization).
    Temporary,
}

/// Writes the configuration files of `pgdata`: the main or temporary configuration, `pg_hba.conf` and, when
/// the recovery mode asks for it, the signal file. Returns the path of the configuration written.
pub fn write_config_files(
    pgdata: &Path,
    target: ConfTarget,
    params: &PgParameters,
    recovery: &RecoveryOptions,
    hba: &[String],
    owner: Option<&OsUser>,
) -> PgResult<PathBuf> {
    let (path, include) = match target {
        ConfTarget::Main => (pgdata.join(CONF_FILE), None),
        ConfTarget::Temporary => {
            let main = pgdata.join(CONF_FILE);
            (pgdata.join(TEMP_CONF_FILE), main.exists().then(|| main.to_string_lossy().into_owned()))
        }
    };
    write_atomic(&path, render_conf(include.as_deref(), params, recovery).as_bytes(), owner)?;
    let mut hba_text = hba.join("\n");
    hba_text.push('\n');
    write_atomic(&pgdata.join(HBA_FILE), hba_text.as_bytes(), owner)?;
    let signal = match recovery.mode {
        RecoveryMode::None => None,
        RecoveryMode::Standby => Some(STANDBY_SIGNAL),
        RecoveryMode::Recovery => Some(RECOVERY_SIGNAL),
    };
    if let Some(s) = signal {
        write_atomic(&pgdata.join(s), b"", owner)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(major: Option<u32>) -> ParameterInputs {
        ParameterInputs {
            major,
            listen_address: "10.0.0.1".into(),
            port: 5432,
            max_standbys: 20,
            additional_wal_senders: 5,
            ..Default::default()
        }
    }

    #[test]
    fn mandatory_parameters_override_the_user() {
        let mut i = inputs(Some(15));
        i.spec_parameters.insert("port".into(), "1".into());
        i.spec_parameters.insert("wal_level".into(), "minimal".into());
        i.spec_parameters.insert("work_mem".into(), "4MB".into());
        i.init_parameters = Some([("work_mem".to_string(), "1MB".to_string()), ("a".into(), "b".into())].into());
        let p = desired_parameters(&i);
        assert_eq!(p["port"], "5432");
        assert_eq!(p["wal_level"], "replica");
        assert_eq!(p["work_mem"], "4MB");
        assert_eq!(p["a"], "b");
        assert_eq!(p["unix_socket_directories"], "/tmp");
        assert_eq!(p["hot_standby"], "on");
        assert_eq!(p["listen_addresses"], "10.0.0.1");
        assert_eq!(p["max_replication_slots"], "20");
        assert_eq!(p["max_wal_senders"], "47");
        assert_eq!(p["wal_keep_size"], "128");
        assert!(!p.contains_key("wal_keep_segments"));
        assert!(!p.contains_key("wal_log_hints"));
        assert!(!p.contains_key("allow_alter_system"));
        assert_eq!(p["synchronous_standby_names"], "");
    }

    #[test]
    fn version_dependent_parameters() {
        let mut i = inputs(Some(12));
        i.spec_parameters.insert("wal_keep_segments".into(), "3".into());
        i.use_pgrewind = true;
        let p = desired_parameters(&i);
        assert_eq!(p["wal_keep_segments"], "8");
        assert_eq!(p["wal_log_hints"], "on");
        i.spec_parameters.insert("wal_keep_segments".into(), "64".into());
        assert_eq!(desired_parameters(&i)["wal_keep_segments"], "64");
        i.spec_parameters.insert("wal_keep_segments".into(), "lots".into());
        assert_eq!(desired_parameters(&i)["wal_keep_segments"], "8");
        let mut i = inputs(Some(17));
        i.spec_parameters.insert("wal_keep_size".into(), "1GB".into());
        i.spec_parameters.insert("wal_level".into(), "logical".into());
        let p = desired_parameters(&i);
        assert_eq!(p["wal_keep_size"], "1GB");
        assert_eq!(p["wal_level"], "logical");
        assert_eq!(p["allow_alter_system"], "off");
        assert_eq!(desired_parameters(&inputs(None))["wal_level"], "hot_standby");
    }

    #[test]
    fn sync_standby_names_count_every_name() {
        assert_eq!(synchronous_standby_names(false, &["a".into()], &[]), "");
        assert_eq!(synchronous_standby_names(true, &[], &[]), "");
        assert_eq!(synchronous_standby_names(true, &["a".into()], &[]), "stolon_a");
        assert_eq!(
            synchronous_standby_names(true, &["a".into(), "b".into()], &["stolonfakestandby".into()]),
            "3 (stolon_a,stolon_b,stolonfakestandby)"
        );
    }

    #[test]
    fn recovery_parameters_follow_the_settings() {
        let s = StandbySettings {
            primary_conninfo: "host=h".into(),
            primary_slot_name: "stolon_x".into(),
            ..Default::default()
        };
        let r = RecoveryOptions::new(RecoveryMode::Standby, Some(&s), None, None);
        assert_eq!(r.parameters.len(), 3);
        assert_eq!(r.parameters["recovery_target_timeline"], "latest");
        let a = ArchiveRecoverySettings { restore_command: "cp /a/%f %p".into() };
        let t = RecoveryTargetSettings { recovery_target_lsn: "0/3000000".into(), ..Default::default() };
        let r = RecoveryOptions::new(RecoveryMode::Recovery, None, Some(&a), Some(&t));
        assert_eq!(r.parameters["restore_command"], "cp /a/%f %p");
        assert_eq!(r.parameters["recovery_target_lsn"], "0/3000000");
        assert_eq!(r.parameters["recovery_target_action"], "promote");
        assert!(!r.parameters.contains_key("recovery_target_timeline"));
    }

    #[test]
    fn rendering_is_quoted_and_ordered() {
        assert_eq!(quote_value(r"it's a\b"), r"'it''s a\\b'");
        let params: PgParameters = [("b".to_string(), "2".to_string()), ("a".into(), "x'y".into())].into();
        let s = StandbySettings { primary_conninfo: "password='p'".into(), ..Default::default() };
        let rec = RecoveryOptions::new(RecoveryMode::Standby, Some(&s), None, None);
        let text = render_conf(Some("/d/postgresql.conf"), &params, &rec);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "include '/d/postgresql.conf'",
                "a = 'x''y'",
                "b = '2'",
                "primary_conninfo = 'password=''p'''",
                "recovery_target_timeline = 'latest'"
            ]
        );
        assert!(!render_conf(None, &params, &RecoveryOptions::none()).contains("recovery_target"));
    }

    #[test]
    fn files_are_written_with_private_mode_and_auto_conf_neutralised() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(AUTO_CONF_FILE), "work_mem = '1GB'\n").unwrap();
        neutralise_auto_conf(dir.path()).unwrap();
        neutralise_auto_conf(dir.path()).unwrap();
        assert_eq!(std::fs::read_link(dir.path().join(AUTO_CONF_FILE)).unwrap(), Path::new("/dev/null"));
        let params: PgParameters = [("port".to_string(), "1".to_string())].into();
        let rec = RecoveryOptions::new(RecoveryMode::Standby, None, None, None);
        let hba = vec!["local all all trust".to_string()];
        let p = write_config_files(dir.path(), ConfTarget::Main, &params, &rec, &hba, None).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(dir.path().join(STANDBY_SIGNAL).exists());
        assert_eq!(std::fs::read_to_string(dir.path().join(HBA_FILE)).unwrap(), "local all all trust\n");
        let t = write_config_files(dir.path(), ConfTarget::Temporary, &params, &RecoveryOptions::none(), &hba, None)
            .unwrap();
        assert!(std::fs::read_to_string(t).unwrap().contains("include '"));
        remove_auto_conf_symlink(dir.path()).unwrap();
        assert!(!dir.path().join(AUTO_CONF_FILE).exists());
    }
}
