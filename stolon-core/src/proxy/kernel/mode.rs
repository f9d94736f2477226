//! `--forwarding auto|kernel|userspace`: how the proxy forwards established connections, chosen once at
//! start. The master port and the read-only port share the choice (and the one SOCKHASH map).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::bpf::{KernelError, SockHash};

/// Sockets the map holds: two per connection, so 32768 kernel-forwarded connections per proxy; a connection
/// beyond that is closed (the insertion fails) and counted in the dial failures' log at debug level.
pub const MAP_CAPACITY: u32 = 65536;

/// The value of `--forwarding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingMode {
    /// The kernel when it loads, else userspace (with one warning and a metric).
    Auto,
    /// The kernel, or a start-up error when it cannot load.
    Kernel,
    /// Copy the bytes through the proxy.
    Userspace,
}

/// The default `--forwarding`. With back-pressure bounded, kernel forwarding makes 1.11-1.31x userspace's
/// TPS and 0.74-0.87 of direct at 8 and 32 clients (docs/benchmarks.md, "Where the time goes"): short of the
/// 15% everywhere a default needs, so it stays opt-in.
pub const DEFAULT_MODE: ForwardingMode = ForwardingMode::Userspace;

impl FromStr for ForwardingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<ForwardingMode, String> {
        match s {
            "auto" => Ok(ForwardingMode::Auto),
            "kernel" => Ok(ForwardingMode::Kernel),
            "userspace" => Ok(ForwardingMode::Userspace),
            _ => Err(format!("invalid forwarding mode {s:?} (expected auto, kernel or userspace)")),
        }
    }
}

impl fmt::Display for ForwardingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardingMode::Auto => "auto",
            ForwardingMode::Kernel => "kernel",
            ForwardingMode::Userspace => "userspace",
        })
    }
}

/// The forwarding in use: userspace copies, or the kernel's map. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    kernel: Option<Arc<SockHash>>,
}

/// What [`Forwarding::select`] chose.
#[derive(Debug)]
pub struct Selected {
    /// The forwarding to use.
    pub forwarding: Forwarding,
    /// Why `auto` fell back to userspace (`None`: it did not, or the mode was not auto).
    pub fallback: Option<KernelError>,
}

impl Forwarding {
    /// Copying through the proxy.
    pub fn userspace() -> Forwarding {
        Forwarding { kernel: None }
    }

    /// Kernel forwarding: loads the program and creates the map.
    pub fn kernel() -> Result<Forwarding, KernelError> {
        Ok(Forwarding { kernel: Some(Arc::new(SockHash::new(MAP_CAPACITY)?)) })
    }

    /// The forwarding for `mode`: `kernel` fails when the kernel path cannot load, `auto` then falls back.
    pub fn select(mode: ForwardingMode) -> Result<Selected, KernelError> {
        match mode {
            ForwardingMode::Userspace => Ok(Selected { forwarding: Forwarding::userspace(), fallback: None }),
            ForwardingMode::Kernel => Ok(Selected { forwarding: Forwarding::kernel()?, fallback: None }),
            ForwardingMode::Auto => Ok(match Forwarding::kernel() {
                Ok(forwarding) => Selected { forwarding, fallback: None },
                Err(e) => Selected { forwarding: Forwarding::userspace(), fallback: Some(e) },
            }),
        }
    }

    /// True when connections are forwarded by the kernel.
    pub fn is_kernel(&self) -> bool {
        self.kernel.is_some()
    }

    /// The map, in kernel mode.
    pub(crate) fn map(&self) -> Option<&SockHash> {
        self.kernel.as_deref()
    }

    /// Both modes, for tests that must pass in each: the kernel one must load (tests run as root on a
    /// kernel with sockmap; a fallback would hide the mode under test).
    #[cfg(test)]
    pub(crate) fn both() -> [Forwarding; 2] {
        [Forwarding::userspace(), Forwarding::kernel().expect("kernel forwarding must load for the tests")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [ForwardingMode::Auto, ForwardingMode::Kernel, ForwardingMode::Userspace] {
            assert_eq!(m.to_string().parse::<ForwardingMode>(), Ok(m));
        }
        assert!("bpf".parse::<ForwardingMode>().unwrap_err().contains("expected auto, kernel or userspace"));
    }

    #[test]
    fn kernel_and_auto_load_here() {
        assert!(Forwarding::select(ForwardingMode::Kernel).unwrap().forwarding.is_kernel());
        let auto = Forwarding::select(ForwardingMode::Auto).unwrap();
        assert!(auto.forwarding.is_kernel() && auto.fallback.is_none());
        assert!(!Forwarding::select(ForwardingMode::Userspace).unwrap().forwarding.is_kernel());
    }
}
