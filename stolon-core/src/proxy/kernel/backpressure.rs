//! Back-pressure of kernel forwarding. The kernel's redirect queue (the receiving peer's psock backlog)
//! would take every byte a socket receives whether or not the final receiver reads: unbounded, a server
//! writing for 1 s to a client that never read queued 1.1 GiB of kernel memory. So the verdict program
//! redirects a chunk only within a *grant* the proxy sets per socket ([`Grant`]): at most [`QUEUE_LIMIT`]
//! bytes beyond what the peer has already put in its send queue. A chunk beyond the grant is *kept*: passed to
//! the receiving socket's own receive side, where it counts against its receive buffer, so TCP's window
//! closes and the sender stalls, as with userspace forwarding. From then on every chunk is kept until the
//! proxy has copied all kept bytes to the peer, which it does once the redirect queue is empty (so the
//! order holds); then the kernel redirects again.
//!
//! The bound holds in the kernel whatever the proxy's timing; the proxy only decides (with [`plan`], a pure
//! function) when to raise a grant and how much to copy, every [`POLL_BUSY`] while a direction needs it and
//! every [`POLL_IDLE`] otherwise.

use std::time::Duration;

use super::bpf::{Count, Grant};

/// Bytes one direction's redirect queue may hold (plus at most one chunk, 64 KiB).
pub const QUEUE_LIMIT: u64 = 4 << 20;

/// Measurement period while a direction has kept bytes to copy or less than half its grant left.
pub const POLL_BUSY: Duration = Duration::from_millis(2);

/// Measurement period otherwise (the bound does not depend on it).
pub const POLL_IDLE: Duration = Duration::from_millis(50);

/// One direction as the proxy measures it: from the socket that receives to its peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Direction {
    /// What the program did with the socket's bytes.
    pub count: Count,
    /// The grant last written.
    pub grant: Grant,
    /// Bytes the peer has put in its send queue since the connection entered the map (redirected and
    /// copied alike).
    pub forwarded: u64,
    /// Kept bytes the proxy has read from the socket but not yet sent to the peer.
    pub pending: u64,
}

/// What to do with a direction now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Kept bytes to read from the socket and send to the peer now (0: none, or not yet in order).
    pub copy: u64,
    /// The larger grant to write, if any.
    pub granted: Option<u64>,
    /// True when the direction should be measured again soon ([`POLL_BUSY`]).
    pub busy: bool,
}

impl Direction {
    /// Redirected bytes not yet in the peer's send queue: the redirect queue.
    pub fn queued(&self) -> u64 {
        let delivered = self.forwarded.saturating_sub(self.grant.copied);
        self.count.redirected.saturating_sub(delivered)
    }
}

/// The plan for direction `d`.
pub fn plan(d: &Direction) -> Plan {
    let queued = d.queued();
    let to_copy = d.count.kept.saturating_sub(d.grant.copied + d.pending);
    // Kept bytes follow every redirected one: copy them only once the redirect queue is empty.
    let copy = if queued == 0 { to_copy } else { 0 };
    // Redirected bytes may run QUEUE_LIMIT ahead of those delivered; raise the grant by a quarter at least.
    let delivered = d.forwarded.saturating_sub(d.grant.copied);
    let target = delivered + QUEUE_LIMIT;
    let granted = (target >= d.grant.granted + QUEUE_LIMIT / 4).then_some(target);
    let left = d.grant.granted.saturating_sub(d.count.redirected);
    let busy = d.count.kept > d.grant.copied || left < QUEUE_LIMIT / 2;
    Plan { copy, granted, busy }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direction(redirected: u64, kept: u64, granted: u64, copied: u64, forwarded: u64) -> Direction {
        Direction { count: Count { redirected, kept }, grant: Grant { granted, copied }, forwarded, pending: 0 }
    }

    #[test]
    fn a_fresh_direction_is_idle_and_keeps_its_grant() {
        let p = plan(&direction(0, 0, QUEUE_LIMIT, 0, 0));
        assert_eq!(p, Plan { copy: 0, granted: None, busy: false });
    }

    #[test]
    fn the_grant_follows_what_the_peer_delivered_never_more_than_the_limit_ahead() {
        // 3 MiB redirected, 2 MiB of it in the peer's send queue: 1 MiB queued.
        let d = direction(3 << 20, 0, QUEUE_LIMIT, 0, 2 << 20);
        assert_eq!(d.queued(), 1 << 20);
        let p = plan(&d);
        assert_eq!(p.granted, Some((2 << 20) + QUEUE_LIMIT), "delivered + limit");
        assert!(p.busy, "less than half the grant left");
        // A small raise is not worth a write.
        assert_eq!(plan(&direction(1000, 0, QUEUE_LIMIT, 0, 1000)).granted, None);
    }

    #[test]
    fn kept_bytes_are_copied_only_once_the_redirect_queue_is_empty() {
        // The grant ran out with 4 MiB redirected; 100 bytes kept since.
        let waiting = direction(QUEUE_LIMIT, 100, QUEUE_LIMIT, 0, QUEUE_LIMIT - 1);
        assert_eq!(plan(&waiting).copy, 0, "one redirected byte is still queued");
        assert!(plan(&waiting).busy);
        let ready = direction(QUEUE_LIMIT, 100, QUEUE_LIMIT, 0, QUEUE_LIMIT);
        assert_eq!(plan(&ready).copy, 100);
        // 60 copied (and counted as forwarded), 30 read but not yet sent: 10 left to read.
        let d = Direction { pending: 30, ..direction(QUEUE_LIMIT, 100, QUEUE_LIMIT, 60, QUEUE_LIMIT + 60) };
        assert_eq!(d.queued(), 0);
        assert_eq!(plan(&d).copy, 10);
        // All copied: not busy on that account, and the grant is raised past what was delivered.
        let done = direction(QUEUE_LIMIT, 100, QUEUE_LIMIT, 100, QUEUE_LIMIT + 100);
        assert_eq!(plan(&done).copy, 0);
        assert_eq!(plan(&done).granted, Some(2 * QUEUE_LIMIT));
    }
}
