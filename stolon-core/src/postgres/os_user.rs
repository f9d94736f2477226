//! The operating-system user PostgreSQL runs as, and ownership of the files made for it.

use std::ffi::{CStr, CString};
use std::path::Path;

use super::error::{PgError, PgResult};

/// An OS account (looked up by name) that PostgreSQL programs are run as when the keeper is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

impl OsUser {
    /// Looks `name` up in the user database (NSS).
    pub fn lookup(name: &str) -> PgResult<OsUser> {
        let not_found = || PgError::State(format!("OS user {name:?} does not exist (see --pg-os-user)"));
        let cname = CString::new(name).map_err(|_| not_found())?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: `pwd` and `buf` outlive the call; getpwnam_r writes only inside them and sets `result`
        // to either null or `&mut pwd`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() {
            return Err(not_found());
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let pw_name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned();
        Ok(OsUser { name: pw_name, uid: pwd.pw_uid, gid: pwd.pw_gid })
    }

    /// Gives `path` to this user (not recursive).
    pub fn chown(&self, path: &Path) -> PgResult<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(|e| PgError::io("chown", path, e))
    }
}

/// Whether this process runs with effective uid 0.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Name of the effective OS user of this process (for the default superuser name); `None` if unknown.
pub fn current_user_name() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: as in `lookup`, every pointer refers to locals that outlive the call.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return std::env::var("USER").ok();
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
    Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_unknown_users_are_named() {
        let root = OsUser::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let err = OsUser::lookup("no-such-user-stolon").unwrap_err().to_string();
        assert!(err.contains("no-such-user-stolon"), "{err}");
    }
}
