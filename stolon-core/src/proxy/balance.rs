//! The read-only port's forwarding engine: like [`Forwarder`](super::Forwarder), with a *set* of targets,
//! each in its own epoch. A new connection goes to the target with the fewest connections (ties taken in
//! turn). Changing the set ends the epochs of the targets that left it, which closes their connections, and
//! returns only once they are all closed; targets that stay keep their connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpStream;

use super::forward::{Epoch, ForwardStats, Keepalive, tune_client};
use super::kernel::Forwarding;
use super::read_only::Target;

/// One target, its epoch and its number of open connections.
struct Member {
    target: Target,
    epoch: Epoch,
    open: Arc<AtomicUsize>,
}

struct Inner {
    members: Mutex<Vec<Member>>,
    /// Serialises set changes, so that a change returns only after its own drain.
    change: tokio::sync::Mutex<()>,
    /// Where the search for the least loaded target starts next (rotates ties).
    next: AtomicUsize,
    keepalive: Keepalive,
    forwarding: Forwarding,
    stats: Arc<ForwardStats>,
}

/// The read-only forwarding engine; cheap to clone (all clones share the targets).
#[derive(Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
}

impl Balancer {
    /// An engine with no target, tuning accepted sockets with `keepalive`, forwarding with `forwarding`.
    pub fn new(keepalive: Keepalive, stats: Arc<ForwardStats>, forwarding: Forwarding) -> Balancer {
        Balancer {
            inner: Arc::new(Inner {
                members: Mutex::new(Vec::new()),
                change: tokio::sync::Mutex::new(()),
                next: AtomicUsize::new(0),
                keepalive,
                forwarding,
                stats,
            }),
        }
    }

    /// The current targets with their open connections, in set order.
    pub fn targets(&self) -> Vec<(Target, usize)> {
        self.lock().iter().map(|m| (m.target.clone(), m.open.load(Ordering::Relaxed))).collect()
    }

    /// Makes `targets` the set: targets not in it any more have their connections closed (this returns
    /// only once they all are), new ones start empty, the others keep theirs. Returns whether the set
    /// changed.
    pub async fn set_targets(&self, targets: &[Target]) -> bool {
        let _serial = self.inner.change.lock().await;
        let (ended, added) = {
            let mut members = self.lock();
            let (kept, ended): (Vec<Member>, Vec<Member>) =
                std::mem::take(&mut *members).into_iter().partition(|m| targets.contains(&m.target));
            *members = kept;
            let mut added = false;
            for t in targets {
                if !members.iter().any(|m| m.target == *t) {
                    members.push(Member {
                        target: t.clone(),
                        epoch: Epoch::new(Some(t.address)),
                        open: Arc::default(),
                    });
                    added = true;
                }
            }
            (ended, added)
        };
        let changed = added || !ended.is_empty();
        if changed {
            self.inner.stats.target_changes.fetch_add(1, Ordering::Relaxed);
        }
        futures::future::join_all(ended.into_iter().map(|m| m.epoch.end())).await;
        changed
    }

    /// Closes the connections of every target `keep` rejects (returning once they are closed) and adds
    /// none: what must go before the proxy reports a new generation.
    pub async fn retain(&self, keep: impl Fn(&Target) -> bool) {
        let kept: Vec<Target> = self.targets().into_iter().map(|(t, _)| t).filter(|t| keep(t)).collect();
        self.set_targets(&kept).await;
    }

    /// Takes over an accepted client connection: forwards it to the least loaded target in a new task,
    /// or closes it at once when there is none.
    pub fn handle(&self, client: TcpStream) {
        let stats = &self.inner.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tune_client(&client, &self.inner.keepalive) {
            tracing::warn!(error = %e, "cannot set TCP options on a client connection; closing it");
            return;
        }
        // The choice and the spawn happen under the lock, so an ending epoch waits for this connection.
        let members = self.lock();
        let Some(chosen) = least_loaded(&members, self.inner.next.fetch_add(1, Ordering::Relaxed)) else {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let member = &members[chosen];
        member.open.fetch_add(1, Ordering::Relaxed);
        let open = member.open.clone();
        member.epoch.spawn(client, member.target.address, &self.inner.forwarding, stats.clone(), move || {
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        // Only whole pushes and replacements happen under this lock: a panic cannot leave it half-updated.
        self.inner.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The index of the member with the fewest open connections, searching from `start` (modulo the length)
/// so that ties are taken in turn; `None` when there is no member.
fn least_loaded(members: &[Member], start: usize) -> Option<usize> {
    let n = members.len();
    (0..n).map(|i| (start + i) % n).min_by_key(|&i| members[i].open.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::read_only::TargetRole;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with its own tag byte, then echoes; returns its address.
    async fn tagged_server(tag: u8) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    if s.write_all(&[tag]).await.is_ok() {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                });
            }
        });
        addr
    }

    async fn front(b: Balancer) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                b.handle(s);
            }
        });
        addr
    }

    fn target(uid: &str, address: SocketAddr) -> Target {
        Target { db_uid: uid.into(), address, role: TargetRole::Standby }
    }

    /// Connects through the balancer and returns the stream and the tag of the server reached.
    async fn connect(front: SocketAddr) -> (TcpStream, u8) {
        let mut s = TcpStream::connect(front).await.unwrap();
        let mut tag = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut tag)).await.unwrap().unwrap();
        (s, tag[0])
    }

    async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
    }

    async fn still_open(s: &mut TcpStream) -> bool {
        if s.write_all(b"x").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 1];
        matches!(tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await, Ok(Ok(_)))
    }

    #[tokio::test]
    async fn no_target_closes_new_connections_at_once() {
        for forwarding in Forwarding::both() {
            let stats = Arc::new(ForwardStats::default());
            let addr = front(Balancer::new(Keepalive::default(), stats.clone(), forwarding.clone())).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            assert!(closed(&mut c).await);
            assert_eq!(stats.rejected.load(Ordering::Relaxed), 1);
        }
    }

    #[tokio::test]
    async fn held_connections_are_spread_by_least_connections() {
        for forwarding in Forwarding::both() {
            let (a, b) = (tagged_server(b'a').await, tagged_server(b'b').await);
            let bal = Balancer::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(bal.clone()).await;
            assert!(bal.set_targets(&[target("a", a), target("b", b)]).await);
            let mut held = Vec::new();
            for _ in 0..6 {
                held.push(connect(addr).await);
            }
            let on_a = held.iter().filter(|(_, t)| *t == b'a').count();
            assert_eq!(on_a, 3, "6 held connections over 2 targets: {on_a} on a");
            // Closing the two on b makes b the least loaded: the next two go there.
            let mut kept = Vec::new();
            let mut dropped_b = 0;
            for (s, t) in held {
                if t == b'b' && dropped_b < 2 {
                    dropped_b += 1;
                    drop(s);
                } else {
                    kept.push(s);
                }
            }
            tokio::time::timeout(Duration::from_secs(5), async {
                while bal.targets().iter().find(|(t, _)| t.db_uid == "b").map(|(_, n)| *n) != Some(1) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("the closed connections were not counted down");
            assert_eq!(connect(addr).await.1, b'b');
            assert_eq!(connect(addr).await.1, b'b');
        }
    }

    #[tokio::test]
    async fn short_connections_alternate_between_idle_targets() {
        for forwarding in Forwarding::both() {
            let (a, b) = (tagged_server(b'a').await, tagged_server(b'b').await);
            let bal = Balancer::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(bal.clone()).await;
            bal.set_targets(&[target("a", a), target("b", b)]).await;
            let mut tags = Vec::new();
            for _ in 0..10 {
                let (s, t) = connect(addr).await;
                drop(s);
                tags.push(t);
                // Let the closed connection be counted down so both targets are idle again.
                tokio::time::timeout(Duration::from_secs(5), async {
                    while bal.targets().iter().any(|(_, n)| *n > 0) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await
                .unwrap();
            }
            let on_a = tags.iter().filter(|t| **t == b'a').count();
            assert_eq!(on_a, 5, "ties must be taken in turn: {tags:?}");
        }
    }

    #[tokio::test]
    async fn a_target_leaving_the_set_closes_only_its_connections_before_returning() {
        for forwarding in Forwarding::both() {
            let (a, b, c) = (tagged_server(b'a').await, tagged_server(b'b').await, tagged_server(b'c').await);
            let stats = Arc::new(ForwardStats::default());
            let bal = Balancer::new(Keepalive::default(), stats.clone(), forwarding.clone());
            let addr = front(bal.clone()).await;
            bal.set_targets(&[target("a", a), target("b", b)]).await;
            let mut conns = Vec::new();
            for _ in 0..4 {
                conns.push(connect(addr).await);
            }
            assert_eq!(stats.active.load(Ordering::Relaxed), 4);
            assert!(!bal.set_targets(&[target("b", b), target("a", a)]).await, "the same set is a no-op");
            assert!(bal.set_targets(&[target("b", b), target("c", c)]).await);
            assert_eq!(stats.active.load(Ordering::Relaxed), 2, "set_targets returned before a's connections closed");
            for (s, tag) in &mut conns {
                if *tag == b'a' {
                    assert!(closed(s).await, "a connection to the removed target survived");
                } else {
                    assert!(still_open(s).await, "a connection to a kept target was closed");
                }
            }
            // c is empty, b holds 2: new connections go to c.
            assert_eq!(connect(addr).await.1, b'c');
        }
    }

    #[tokio::test]
    async fn a_role_change_of_the_same_db_closes_its_connections() {
        for forwarding in Forwarding::both() {
            let a = tagged_server(b'a').await;
            let bal = Balancer::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(bal.clone()).await;
            let fallback = Target { db_uid: "a".into(), address: a, role: TargetRole::MasterFallback };
            bal.set_targets(std::slice::from_ref(&fallback)).await;
            let (mut s, _) = connect(addr).await;
            assert!(bal.set_targets(&[target("a", a)]).await);
            assert!(closed(&mut s).await, "a master fallback connection survived the change to standby");
        }
    }

    #[tokio::test]
    async fn retain_closes_what_is_rejected_and_adds_nothing() {
        for forwarding in Forwarding::both() {
            let (a, b) = (tagged_server(b'a').await, tagged_server(b'b').await);
            let bal = Balancer::new(Keepalive::default(), Arc::new(ForwardStats::default()), forwarding.clone());
            let addr = front(bal.clone()).await;
            bal.set_targets(&[target("a", a), target("b", b)]).await;
            let (mut on_first, first) = connect(addr).await;
            let (mut on_second, _) = connect(addr).await;
            bal.retain(|t| t.address != a).await;
            assert_eq!(bal.targets().iter().map(|(t, _)| t.db_uid.as_str()).collect::<Vec<_>>(), ["b"]);
            let (on_a, on_b) =
                if first == b'a' { (&mut on_first, &mut on_second) } else { (&mut on_second, &mut on_first) };
            assert!(closed(on_a).await);
            assert!(still_open(on_b).await);
        }
    }

    #[tokio::test]
    async fn an_unreachable_target_closes_the_client() {
        for forwarding in Forwarding::both() {
            let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let stats = Arc::new(ForwardStats::default());
            let bal = Balancer::new(Keepalive::default(), stats.clone(), forwarding.clone());
            let addr = front(bal.clone()).await;
            bal.set_targets(&[target("dead", dead)]).await;
            let mut c = TcpStream::connect(addr).await.unwrap();
            assert!(closed(&mut c).await);
            assert_eq!(stats.dial_failures.load(Ordering::Relaxed), 1);
            tokio::time::timeout(Duration::from_secs(5), async {
                while bal.targets()[0].1 != 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("a failed dial must not stay counted");
        }
    }
}
