//! The forwarding engine: every accepted client connection is copied both ways to the current target in
//! its own task. The target lives in an *epoch*; changing the target ends the epoch, which closes every
//! connection of it, and [`Forwarder::set_target`] returns only once all of them are closed. With no
//! target, new connections are closed at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::kernel::{Forwarding, splice};

/// How long dialling the target may take before the client connection is closed.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Size of each of the two copy buffers of a connection.
pub const COPY_BUFFER_SIZE: usize = 8 * 1024;

/// TCP keepalive overrides for accepted client sockets; `None` keeps the kernel default. Keepalive itself
/// is always enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`--tcp-keepalive-idle`).
    pub idle: Option<Duration>,
    /// Time between probes (`--tcp-keepalive-interval`).
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`--tcp-keepalive-count`).
    pub count: Option<u32>,
}

/// Counters of the forwarding engine, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections closed at once because there was no target.
    pub rejected: AtomicU64,
    /// Client connections whose dial to the target failed or timed out.
    pub dial_failures: AtomicU64,
    /// Connections being forwarded now.
    pub active: AtomicI64,
    /// Target changes (each one closed every forwarded connection).
    pub target_changes: AtomicU64,
}

/// One target and the connections forwarded to it (the master port has one at a time, the read-only port
/// one per target).
pub(super) struct Epoch {
    target: Option<SocketAddr>,
    /// Set to true when the epoch ends: every connection task of the epoch returns.
    cancel: watch::Sender<bool>,
    /// Cloned into every connection task of the epoch; the epoch is drained when all clones are dropped.
    live: mpsc::Sender<()>,
    drained: mpsc::Receiver<()>,
}

impl Epoch {
    pub(super) fn new(target: Option<SocketAddr>) -> Epoch {
        let (cancel, _) = watch::channel(false);
        let (live, drained) = mpsc::channel(1);
        Epoch { target, cancel, live, drained }
    }

    /// Forwards `client` to `target` in a new task belonging to this epoch, counted in `stats.active`;
    /// `on_close` runs once the connection is closed. Callers hold the lock that guards the epoch's
    /// replacement, so an epoch that ends after this call waits for the new connection too.
    pub(super) fn spawn(
        &self,
        client: TcpStream,
        target: SocketAddr,
        forwarding: &Forwarding,
        stats: Arc<ForwardStats>,
        on_close: impl FnOnce() + Send + 'static,
    ) {
        let (cancel, live, forwarding) = (self.cancel.subscribe(), self.live.clone(), forwarding.clone());
        stats.active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            forward(client, target, cancel, &forwarding, &stats).await;
            stats.active.fetch_sub(1, Ordering::Relaxed);
            on_close();
            drop(live);
        });
    }

    /// Ends the epoch and waits until every connection of it is closed.
    pub(super) async fn end(self) {
        let Epoch { cancel, live, mut drained, .. } = self;
        cancel.send_replace(true);
        drop(live);
        // Nothing is ever sent: recv returns None once the last connection task dropped its sender.
        while drained.recv().await.is_some() {}
    }
}

struct Inner {
    epoch: Mutex<Epoch>,
    /// Serialises target changes, so that a change returns only after its own drain.
    change: tokio::sync::Mutex<()>,
    keepalive: Keepalive,
    forwarding: Forwarding,
    stats: Arc<ForwardStats>,
}

/// The forwarding engine; cheap to clone (all clones share the target).
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

impl Forwarder {
    /// An engine with no target, tuning accepted sockets with `keepalive`, forwarding with `forwarding`.
    pub fn new(keepalive: Keepalive, stats: Arc<ForwardStats>, forwarding: Forwarding) -> Forwarder {
        Forwarder {
            inner: Arc::new(Inner {
                epoch: Mutex::new(Epoch::new(None)),
                change: tokio::sync::Mutex::new(()),
                keepalive,
                forwarding,
                stats,
            }),
        }
    }

    /// The current target.
    pub fn target(&self) -> Option<SocketAddr> {
        self.lock_epoch().target
    }

    /// Sets the target. A different target (including none) closes every forwarded connection, and this
    /// returns only once they are all closed; the same target again is a no-op. Returns whether the
    /// target changed.
    pub async fn set_target(&self, target: Option<SocketAddr>) -> bool {
        let _serial = self.inner.change.lock().await;
        let old = {
            let mut epoch = self.lock_epoch();
            if epoch.target == target {
                return false;
            }
            std::mem::replace(&mut *epoch, Epoch::new(target))
        };
        self.inner.stats.target_changes.fetch_add(1, Ordering::Relaxed);
        old.end().await;
        true
    }

    /// Takes over an accepted client connection: forwards it to the current target in a new task, or
    /// closes it at once when there is none.
    pub fn handle(&self, client: TcpStream) {
        let stats = &self.inner.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tune_client(&client, &self.inner.keepalive) {
            tracing::warn!(error = %e, "cannot set TCP options on a client connection; closing it");
            return;
        }
        // The task is spawned under the lock, so an epoch that ends after this point waits for it.
        let epoch = self.lock_epoch();
        let Some(target) = epoch.target else {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        epoch.spawn(client, target, &self.inner.forwarding, stats.clone(), || ());
    }

    fn lock_epoch(&self) -> std::sync::MutexGuard<'_, Epoch> {
        // A panic while holding this lock cannot leave the epoch half-updated (only whole replacements).
        self.inner.epoch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keepalive (always on, with the configured overrides) and no Nagle delay on a client socket.
pub(super) fn tune_client(client: &TcpStream, keepalive: &Keepalive) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let sock = socket2::SockRef::from(client);
    sock.set_keepalive(true)?;
    let mut params = socket2::TcpKeepalive::new();
    let mut any = false;
    if let Some(idle) = keepalive.idle {
        params = params.with_time(idle);
        any = true;
    }
    if let Some(interval) = keepalive.interval {
        params = params.with_interval(interval);
        any = true;
    }
    if let Some(count) = keepalive.count {
        params = params.with_retries(count);
        any = true;
    }
    if any {
        sock.set_tcp_keepalive(&params)?;
    }
    Ok(())
}

/// Dials `target` and forwards both ways (copying, or in the kernel) until either side closes or the epoch
/// ends; both sockets are closed on return (in the kernel mode, out of the map first).
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    mut cancel: watch::Receiver<bool>,
    forwarding: &Forwarding,
    stats: &ForwardStats,
) {
    let ended = async move {
        // An error means the epoch is gone: end as well.
        let _ = cancel.wait_for(|ended| *ended).await;
    };
    tokio::pin!(ended);
    let dialled = tokio::select! {
        biased;
        () = &mut ended => return,
        dialled = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target)) => dialled,
    };
    let server = match dialled {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.dial_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%target, error = %e, "cannot dial the target");
            return;
        }
        Err(_) => {
            stats.dial_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%target, "dialling the target timed out");
            return;
        }
    };
    let _ = server.set_nodelay(true);
    match forwarding.map() {
        Some(map) => {
            if let (Ok(client), Ok(server)) = (client.into_std(), server.into_std()) {
                splice(map, client, server, ended).await;
            }
        }
        None => {
            let (mut client, mut server) = (client, server);
            let copy =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, COPY_BUFFER_SIZE, COPY_BUFFER_SIZE);
            tokio::select! {
                biased;
                () = ended => {}
                _ = copy => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::kernel::Forwarding;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An echo server on loopback; returns its address.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A listener whose accepted sockets go to `fwd`; returns its address.
    async fn front(fwd: Forwarder) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                fwd.handle(s);
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut buf = vec![0; msg.len()];
        s.read_exact(&mut buf).await?;
        Ok(buf)
    }

    /// Reads until EOF or error, bounded in time; true when the peer closed.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
    }

    #[tokio::test]
    async fn no_target_closes_new_connections_at_once() {
        for forwarding in Forwarding::both() {
            let stats = Arc::new(ForwardStats::default());
            let addr = front(Forwarder::new(Keepalive::default(), stats.clone(), forwarding.clone())).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            assert!(closed(&mut c).await);
            assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
        }
    }

    #[tokio::test]
    async fn target_change_closes_every_connection_before_returning() {
        for forwarding in Forwarding::both() {
            let (a, b) = (echo_server().await, echo_server().await);
            let stats = Arc::new(ForwardStats::default());
            let fwd = Forwarder::new(Keepalive::default(), stats.clone(), forwarding.clone());
            let addr = front(fwd.clone()).await;
            assert!(fwd.set_target(Some(a)).await);
            let mut conns = Vec::new();
            for i in 0..5u8 {
                let mut c = TcpStream::connect(addr).await.unwrap();
                assert_eq!(roundtrip(&mut c, &[i; 3]).await.unwrap(), vec![i; 3]);
                conns.push(c);
            }
            assert_eq!(stats.active.load(Ordering::Relaxed), 5);
            assert!(!fwd.set_target(Some(a)).await, "the same target is a no-op");
            assert_eq!(stats.active.load(Ordering::Relaxed), 5);
            assert!(fwd.set_target(Some(b)).await);
            assert_eq!(stats.active.load(Ordering::Relaxed), 0, "set_target returned before the drain");
            for c in &mut conns {
                assert!(closed(c).await);
            }
            let mut c = TcpStream::connect(addr).await.unwrap();
            assert_eq!(roundtrip(&mut c, b"new").await.unwrap(), b"new");
            assert_eq!(fwd.target(), Some(b));
        }
    }

    #[tokio::test]
    async fn a_client_that_never_reads_does_not_stall_others() {
        for forwarding in Forwarding::both() {
            let a = echo_server().await;
            let fwd = Forwarder::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(fwd.clone()).await;
            fwd.set_target(Some(a)).await;
            let mut stuck = TcpStream::connect(addr).await.unwrap();
            // Write far more than the socket buffers hold without reading the echo; bounded in time.
            let chunk = vec![7u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                for _ in 0..1024 {
                    if stuck.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            let mut other = TcpStream::connect(addr).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(5), roundtrip(&mut other, b"ping")).await;
            assert_eq!(reply.expect("other client stalled").unwrap(), b"ping");
            // Dropping the target still closes the stuck connection.
            assert!(fwd.set_target(None).await);
        }
    }

    #[tokio::test]
    async fn unreachable_target_closes_the_client() {
        for forwarding in Forwarding::both() {
            let dead = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let stats = Arc::new(ForwardStats::default());
            let fwd = Forwarder::new(Keepalive::default(), stats.clone(), forwarding.clone());
            let addr = front(fwd.clone()).await;
            fwd.set_target(Some(dead)).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            assert!(closed(&mut c).await);
            assert_eq!(stats.dial_failures.load(Ordering::Relaxed), 1);
        }
    }

    #[tokio::test]
    async fn keepalive_overrides_are_applied() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let ka =
            Keepalive { idle: Some(Duration::from_secs(30)), interval: Some(Duration::from_secs(7)), count: Some(4) };
        tune_client(&c, &ka).unwrap();
        let s = socket2::SockRef::from(&c);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(7));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 4);
        assert!(c.nodelay().unwrap());
    }

    /// Payload bytes the kernel received on `s` (its FIN, counted by TCP_INFO as one, excluded).
    fn payload_received(s: &TcpStream) -> u64 {
        use std::os::fd::AsRawFd;
        let info = crate::proxy::kernel::splice::tcp_info(s.as_raw_fd()).unwrap();
        info.tcpi_bytes_received - u64::from(info.tcpi_state == 8 /* TCP_CLOSE_WAIT */)
    }

    /// Fencing, in both modes: once `set_target` returned, not one more byte reaches the old target's
    /// socket, however fast the client keeps writing; the old target then sees the connection closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_target_change_no_byte_reaches_the_old_target() {
        for forwarding in Forwarding::both() {
            let old = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let fwd = Forwarder::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(fwd.clone()).await;
            fwd.set_target(Some(old.local_addr().unwrap())).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"startup").await.unwrap();
            // The old target never reads: every byte it gets stays counted in its socket.
            let (mut accepted, _) = old.accept().await.unwrap();
            let writer = tokio::spawn(async move {
                for _ in 0..2000 {
                    if c.write_all(&[1u8; 512]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(payload_received(&accepted) > 7, "nothing was forwarded ({})", forwarding.is_kernel());
            assert!(fwd.set_target(Some(echo_server().await)).await);
            let at_change = payload_received(&accepted);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(payload_received(&accepted), at_change, "kernel mode: {}", forwarding.is_kernel());
            writer.abort();
            let mut rest = Vec::new();
            let end = tokio::time::timeout(Duration::from_secs(5), accepted.read_to_end(&mut rest)).await;
            assert!(end.is_ok(), "the old target's connection stayed open");
        }
    }
}
