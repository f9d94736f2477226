//! The keeper's start-up checks, in stolon's order and words (`stolon_core::keeper::messages`): required
//! flags, auth methods, passwords and password files, superuser versus replication user, the data directory
//! lock, the keeper UID and the advertised address. A failed check is an error whose text is stolon's
//! message; warnings are logged as stolon logs them.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use stolon_core::keeper::messages as m;
use stolon_core::postgres::AuthMethod;

/// The user a password belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// `--pg-su-*`.
    Superuser,
    /// `--pg-repl-*`.
    Replication,
}

impl User {
    /// `superuser` for the superuser, `replication` for the replication user.
    fn pick<T>(self, superuser: T, replication: T) -> T {
        match self {
            User::Superuser => superuser,
            User::Replication => replication,
        }
    }
}

/// Parses `--pg-repl-auth-method` / `--pg-su-auth-method`.
pub fn auth_method(user: User, value: &str) -> Result<AuthMethod, String> {
    value.parse().map_err(|_| user.pick(m::SU_AUTH_METHOD_INVALID, m::REPL_AUTH_METHOD_INVALID).to_string())
}

/// The password of `user` from `--pg-<user>-password` (`value`) or `--pg-<user>-passwordfile` (`file`):
/// exactly one of them unless the auth method is trust (then neither, and a warning); trailing CR/LF removed
/// (with a warning); a file readable by others than its owner gets a warning.
pub fn password(user: User, auth: AuthMethod, value: &str, file: &str) -> Result<Option<String>, String> {
    let words = |superuser: &str, replication: &str| user.pick(superuser, replication).to_string();
    if auth == AuthMethod::Trust {
        tracing::warn!("{}", user.pick(m::SU_TRUST_DANGEROUS, m::REPL_TRUST_DANGEROUS));
        if !value.is_empty() || !file.is_empty() {
            return Err(words(m::SU_TRUST_WITH_PASSWORD, m::REPL_TRUST_WITH_PASSWORD));
        }
        return Ok(None);
    }
    let raw = match (value.is_empty(), file.is_empty()) {
        (true, true) => return Err(words(m::SU_PASSWORD_REQUIRED, m::REPL_PASSWORD_REQUIRED)),
        (false, false) => return Err(words(m::SU_PASSWORD_TWICE, m::REPL_PASSWORD_TWICE)),
        (false, true) => value.to_string(),
        (true, false) => read_password_file(user, file)?,
    };
    let trimmed = raw.trim_end_matches(['\r', '\n']);
    if trimmed.len() != raw.len() {
        tracing::warn!("{}", user.pick(m::SU_PASSWORD_TRAILING_NEWLINE, m::REPL_PASSWORD_TRAILING_NEWLINE));
        if trimmed.is_empty() {
            return Err(words(m::SU_PASSWORD_EMPTY_AFTER_TRIM, m::REPL_PASSWORD_EMPTY_AFTER_TRIM));
        }
    }
    if trimmed.is_empty() {
        // stolon accepted an empty password file; an empty password is never what was meant.
        return Err(format!("the {} password in {file} is empty", user.pick("superuser", "replication user")));
    }
    Ok(Some(trimmed.to_string()))
}

fn read_password_file(user: User, file: &str) -> Result<String, String> {
    let su = user == User::Superuser;
    let path = Path::new(file);
    let meta = std::fs::metadata(path).map_err(|e| m::cannot_read_password(su, file, &e))?;
    if meta.permissions().mode() & 0o7177 != 0 {
        let mode = format!("0{:o}", meta.permissions().mode() & 0o7777);
        tracing::warn!(file, mode, "{}", m::PASSWORD_FILE_TOO_OPEN);
    }
    std::fs::read_to_string(path).map_err(|e| m::cannot_read_password(su, file, &e))
}

/// Superuser and replication user given as the same user: a warning, and they must share auth method and
/// password.
pub fn same_users(
    auths: (AuthMethod, AuthMethod),
    su_password: &Option<String>,
    repl_password: &Option<String>,
) -> Result<(), String> {
    tracing::warn!("{}", m::SAME_USERS);
    let (su_auth, repl_auth) = auths;
    if su_auth != repl_auth {
        return Err(m::SAME_USERS_AUTH_DIFFERS.to_string());
    }
    if su_auth != AuthMethod::Trust && su_password != repl_password {
        return Err(m::SAME_USERS_PASSWORD_DIFFERS.to_string());
    }
    Ok(())
}

/// Takes a non-blocking exclusive fcntl write lock on the whole `<data-dir>/lock` (created if needed); the
/// file stays open, and locked, as long as the returned handle lives.
pub fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = data_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| m::data_dir_lock_failed(&path, &e))?;
    // SAFETY: `fl` is a fully initialised flock struct and the descriptor is open for writing.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
    if rc != 0 {
        return Err(m::data_dir_lock_failed(&path, &std::io::Error::last_os_error()));
    }
    tracing::info!("{}", m::DATA_DIR_LOCKED);
    Ok(file)
}

/// Whether `uid` can be a keeper UID (it names replication slots: `^[a-z0-9_]+$`).
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks `--uid` (empty: none given).
pub fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || valid_uid(uid) { Ok(()) } else { Err(m::invalid_uid(uid)) }
}

/// Warns when the advertised address (from `--<flag>`) is a host name or a loopback address: other
/// components must reach it.
pub fn warn_about_advertise_address(flag: &str, address: &str) {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => tracing::warn!("{}", m::advertise_address_is_loopback(flag, address)),
        Ok(_) => {}
        Err(_) => tracing::warn!("{}", m::advertise_address_is_hostname(flag, address)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs `f` with a subscriber writing like the daemons' (level, target, message, fields) into a buffer;
    /// returns what `f` returned and the log.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("log buffer").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).without_time().with_writer(move || out.clone()).finish();
        let r = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().expect("log buffer").clone()).expect("utf-8 log");
        (r, text)
    }

    /// The messages of `log`, one per line, as `LEVEL message` (target and fields removed).
    fn lines(log: &str) -> Vec<String> {
        log.lines()
            .map(|l| {
                let (level, rest) = l.trim_start().split_once(' ').unwrap_or(("", l));
                let msg = rest.split_once(": ").map_or(rest, |(_, m)| m);
                let msg = msg.split(" file=").next().unwrap_or(msg);
                format!("{level} {msg}")
            })
            .collect()
    }

    #[test]
    fn password_checks_log_and_fail_in_stolons_words() {
        let (r, log) = logged(|| password(User::Replication, AuthMethod::Trust, "", ""));
        assert_eq!(r, Ok(None));
        assert_eq!(lines(&log), ["WARN not utilizing a password for replication between hosts is extremely dangerous"]);
        let (r, log) = logged(|| password(User::Superuser, AuthMethod::Trust, "x", ""));
        assert_eq!(
            r.unwrap_err(),
            "can not utilize --pg-su-auth-method trust together with --pg-su-password or --pg-su-passwordfile"
        );
        assert_eq!(lines(&log), ["WARN not utilizing a password for superuser is extremely dangerous"]);
        assert_eq!(
            password(User::Replication, AuthMethod::Md5, "", "").unwrap_err(),
            "one of --pg-repl-password or --pg-repl-passwordfile is required"
        );
        assert_eq!(
            password(User::Superuser, AuthMethod::Md5, "a", "/f").unwrap_err(),
            "only one of --pg-su-password or --pg-su-passwordfile must be provided"
        );
        let (r, log) = logged(|| password(User::Superuser, AuthMethod::Md5, "secret\r\n", ""));
        assert_eq!(r.unwrap().as_deref(), Some("secret"));
        assert_eq!(lines(&log), ["WARN superuser password contain trailing new line, removing"]);
        let (r, log) = logged(|| password(User::Replication, AuthMethod::Md5, "\n", ""));
        assert_eq!(r.unwrap_err(), "replication user password is empty after removing trailing new line");
        assert_eq!(lines(&log), ["WARN replication user password contain trailing new line, removing"]);
    }

    #[test]
    fn password_files_are_checked_in_stolons_words() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = f.to_string_lossy().into_owned();
        let (r, log) = logged(|| password(User::Replication, AuthMethod::Md5, "", &file));
        assert_eq!(r.unwrap().as_deref(), Some("from-file"));
        assert_eq!(
            lines(&log),
            ["WARN password file permissions are too open. This file should only be readable to the user \
                 executing stolon! Continuing..."]
        );
        assert!(log.contains(&format!("file=\"{file}\" mode=\"0644\"")), "{log}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, log) = logged(|| password(User::Replication, AuthMethod::Md5, "", &file));
        assert_eq!(log, "", "a 0600 file is fine");
        let missing = dir.path().join("missing").to_string_lossy().into_owned();
        assert_eq!(
            password(User::Superuser, AuthMethod::Md5, "", &missing).unwrap_err(),
            format!(
                "cannot read pg superuser password: unable to read password from file {missing}: \
                 No such file or directory (os error 2)"
            )
        );
    }

    #[test]
    fn same_users_and_auth_methods_in_stolons_words() {
        let (r, log) = logged(|| same_users((AuthMethod::Md5, AuthMethod::Trust), &None, &None));
        assert_eq!(r.unwrap_err(), "do not support different auth methods when utilizing superuser for replication.");
        assert_eq!(
            lines(&log),
            ["WARN superuser name and replication user name are the same. Different users are suggested."]
        );
        let (a, b) = (Some("a".to_string()), Some("b".to_string()));
        assert_eq!(
            same_users((AuthMethod::Md5, AuthMethod::Md5), &a, &b).unwrap_err(),
            "provided superuser name and replication user name are the same but provided passwords are different"
        );
        assert_eq!(same_users((AuthMethod::Md5, AuthMethod::Md5), &a, &a), Ok(()));
        assert_eq!(
            auth_method(User::Replication, "password").unwrap_err(),
            "--pg-repl-auth-method must be one of: md5, trust"
        );
        assert_eq!(
            auth_method(User::Superuser, "x").unwrap_err(),
            "--pg-su-auth-method must be one of: md5, password, trust"
        );
        assert_eq!(auth_method(User::Superuser, "trust"), Ok(AuthMethod::Trust));
    }

    #[test]
    fn data_dir_lock_in_stolons_words() {
        let dir = tempfile::tempdir().unwrap();
        let (held, log) = logged(|| lock_data_dir(dir.path()));
        let _held = held.expect("first lock");
        assert_eq!(lines(&log), ["INFO exclusive lock on data dir taken"]);
        // fcntl locks are per process: tests/log_messages.rs runs a keeper on a data directory this process
        // locked; here, the message itself.
        let lock_file = dir.path().join("lock");
        let err = m::data_dir_lock_failed(&lock_file, &"resource temporarily unavailable");
        assert_eq!(
            err,
            format!(
                "cannot take exclusive lock on data dir \"{}\": resource temporarily unavailable",
                lock_file.display()
            )
        );
    }

    #[test]
    fn uid_and_address_checks_in_stolons_words() {
        assert!(valid_uid("keeper_1") && !valid_uid("Keeper") && !valid_uid("k-1") && !valid_uid(""));
        assert_eq!(check_uid(""), Ok(()));
        assert_eq!(
            check_uid("k-1").unwrap_err(),
            "keeper uid \"k-1\" not valid. It can contain only lower-case letters, numbers and the underscore character"
        );
        let (_, log) = logged(|| warn_about_advertise_address("pg-listen-address", "127.0.0.1"));
        assert_eq!(
            lines(&log),
            ["WARN provided --pg-listen-address \"127.0.0.1\" is a loopback ip. This will be advertized to the other \
              components and communication will fail if they are on different hosts"]
        );
        let (_, log) = logged(|| warn_about_advertise_address("pg-advertise-address", "db0.example"));
        assert_eq!(
            lines(&log),
            [
                "WARN provided --pg-advertise-address \"db0.example\": is not an ip address but a hostname. This will be \
              advertized to the other components and may have undefined behaviors if resolved differently by other \
              hosts"
            ]
        );
        let (_, log) = logged(|| warn_about_advertise_address("pg-advertise-address", "10.0.0.1"));
        assert_eq!(log, "");
    }
}
