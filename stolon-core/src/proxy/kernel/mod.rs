//! Kernel forwarding (`--forwarding kernel`): established connections are forwarded by an eBPF
//! stream-verdict program on a SOCKHASH map instead of being copied through the proxy.
//!
//! - [`bpf`]: the program (its instructions, spelled out), the map, loading and attaching with bpf(2);
//! - [`splice`]: one connection's life in the map: entering it, its two directions closing, fencing;
//! - [`backpressure`]: how much the kernel may queue per direction, and copying what it kept;
//! - [`mode`]: `--forwarding auto|kernel|userspace` and the choice made at start.

pub mod backpressure;
pub mod bpf;
pub mod mode;
pub mod splice;

pub use bpf::{KernelError, SockHash};
pub use mode::{DEFAULT_MODE, Forwarding, ForwardingMode, Selected};
pub use splice::{Ended, splice};

#[cfg(test)]
mod concurrent_tests;
