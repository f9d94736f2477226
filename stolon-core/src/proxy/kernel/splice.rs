//! One connection forwarded inside the kernel: both sockets enter the SOCKHASH (each under its peer's
//! cookie) and the verdict program moves every byte; this task only watches for either side closing and
//! for the end of the epoch. It is never woken by data: it waits on its own epoll set with `EPOLLRDHUP`
//! only (plus the always-reported errors and hang-ups).
//!
//! - **Bytes queued before the sockets entered the map** (the startup message a client sends right after
//!   connecting): the kernel runs the program for them at the first receive call on the socket, which this
//!   task makes right after inserting both sockets. The server socket is inserted first: PostgreSQL speaks
//!   only after the client's first message, so nothing can arrive on it before its peer is in the map.
//! - **One side closes** (FIN): once every byte it sent has reached the other socket's send queue (compared
//!   through `TCP_INFO` and `SIOCOUTQ`), the other socket's write side is shut down, as the userspace mode
//!   does; the connection ends when both directions have ended. A reset or socket error ends it at once.
//! - **Back-pressure**: a peer that does not read fills its socket's send buffer; the kernel then keeps
//!   the redirected bytes queued (see docs/proxy.md#kernel-forwarding for the bound).
//! - **Fencing** ([`Splice::close`]): both sockets leave the map, then close; the master's socket closes
//!   with a reset (`SO_LINGER` 0), so bytes still queued towards it are discarded, never delivered.

use std::future::Future;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::bpf::{SockHash, socket_cookie};

/// How often a closing direction checks whether its last bytes reached the other socket.
const DRAIN_POLL: Duration = Duration::from_millis(1);

/// How a kernel-forwarded connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both directions closed normally.
    Closed,
    /// A socket reported an error or a reset.
    Failed,
    /// The epoch ended (fencing): both sockets were closed, the server's with a reset.
    Fenced,
}

/// Forwards `client` and `server` (connected, non-blocking) inside the kernel until both directions
/// close, a socket fails, or `cancel` completes; both sockets are out of the map and closed on return.
pub async fn splice(map: &SockHash, client: TcpStream, server: TcpStream, cancel: impl Future<Output = ()>) -> Ended {
    let splice = match Splice::enter(map, client, server) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cannot forward a connection in the kernel; closing it");
            return Ended::Failed;
        }
    };
    let ended = tokio::select! {
        biased;
        () = cancel => Ended::Fenced,
        ended = splice.watch() => ended,
    };
    splice.close(map, ended == Ended::Fenced);
    ended
}

/// The two sockets of a connection while they are in the map.
struct Splice {
    /// `[client, server]`.
    sockets: [TcpStream; 2],
    /// `[client cookie, server cookie]`; each socket is stored under the *other* one.
    cookies: [u64; 2],
    events: AsyncFd<OwnedFd>,
}

impl Splice {
    fn enter(map: &SockHash, client: TcpStream, server: TcpStream) -> io::Result<Splice> {
        let cookies = [socket_cookie(client.as_raw_fd())?, socket_cookie(server.as_raw_fd())?];
        let events = epoll_for_hangups([client.as_raw_fd(), server.as_raw_fd()])?;
        // SAFETY: `events` is an open epoll descriptor owned by the AsyncFd for its whole life.
        let events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let splice = Splice { sockets: [client, server], cookies, events };
        // The server first (under the client's cookie), then the client (under the server's).
        map.insert(cookies[0], splice.sockets[1].as_raw_fd())?;
        if let Err(e) = map.insert(cookies[1], splice.sockets[0].as_raw_fd()) {
            let _ = map.remove(cookies[0]);
            return Err(e);
        }
        // A receive call makes the kernel run the program for bytes queued before the insertion.
        for s in &splice.sockets {
            let mut byte = [0u8; 1];
            // SAFETY: recv writes at most 1 byte into `byte`.
            let n = unsafe { libc::recv(s.as_raw_fd(), byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
            if n > 0 {
                // Every byte is redirected; one handed to the proxy would be out of order: give up.
                splice.close(map, false);
                return Err(io::Error::other("a byte reached the proxy instead of the peer"));
            }
        }
        Ok(splice)
    }

    /// Waits until both directions have closed (each after draining) or a socket fails.
    async fn watch(&self) -> Ended {
        // Per side: its peer has seen EOF (its bytes are all in the other socket's queue and the other
        // socket's write side is shut).
        let mut done = [false; 2];
        let mut draining = [false; 2];
        loop {
            for side in 0..2 {
                if draining[side] && self.drained(side) {
                    draining[side] = false;
                    done[side] = true;
                    let _ = self.sockets[1 - side].shutdown(std::net::Shutdown::Write);
                }
            }
            if done == [true, true] {
                return Ended::Closed;
            }
            let ready = if draining.contains(&true) {
                tokio::time::timeout(DRAIN_POLL, self.events.readable()).await.ok()
            } else {
                Some(self.events.readable().await)
            };
            let Some(ready) = ready else { continue };
            let Ok(mut guard) = ready else { return Ended::Failed };
            let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 2];
            // SAFETY: epoll_wait writes at most 2 events into `buf`; timeout 0 never blocks.
            let n = unsafe { libc::epoll_wait(self.events.get_ref().as_raw_fd(), buf.as_mut_ptr(), 2, 0) };
            if n <= 0 {
                guard.clear_ready();
                continue;
            }
            let events = &buf[..n as usize];
            for ev in events {
                // A hang-up is also reported once both directions of the socket are shut: a normal end.
                let side = ev.u64 as usize;
                if ev.events as libc::c_int & (libc::EPOLLRDHUP | libc::EPOLLHUP) != 0 && !done[side] {
                    draining[side] = true;
                }
            }
            for ev in events {
                let side = ev.u64 as usize;
                let error = self.error(side);
                let peer_ended = draining[1 - side] || done[1 - side];
                if (ev.events as libc::c_int & libc::EPOLLERR != 0 || error.is_some()) && !benign(error, peer_ended) {
                    return Ended::Failed;
                }
            }
        }
    }

    /// True once every byte received by socket `side` (which received a FIN) is in the other socket's send
    /// queue or acknowledged.
    fn drained(&self, side: usize) -> bool {
        let (from, to) = (&self.sockets[side], &self.sockets[1 - side]);
        match (tcp_info(from.as_raw_fd()), tcp_info(to.as_raw_fd()), outq(to.as_raw_fd())) {
            // The FIN counts as one byte received.
            (Ok(f), Ok(t), Ok(q)) => t.tcpi_bytes_acked + q + 1 >= f.tcpi_bytes_received,
            _ => true,
        }
    }

    /// The pending error of socket `side` (cleared by reading it).
    fn error(&self, side: usize) -> Option<io::Error> {
        self.sockets[side].take_error().unwrap_or_else(Some)
    }

    /// Takes both sockets out of the map, then closes them (dropping `self`); with `reset`, the server's
    /// socket closes with a reset so that nothing still queued towards it is delivered.
    fn close(self, map: &SockHash, reset: bool) {
        for key in self.cookies {
            if let Err(e) = map.remove(key) {
                tracing::warn!(error = %e, "cannot remove a socket from the kernel forwarding map");
            }
        }
        if reset {
            let _ = socket2::SockRef::from(&self.sockets[1]).set_linger(Some(Duration::ZERO));
        }
    }
}

/// When a socket's peer receives the end of stream, the kernel redirects it as an empty chunk and reports
/// `EPIPE` on the socket (`peer_ended`): not a failure. Any other error is.
fn benign(error: Option<io::Error>, peer_ended: bool) -> bool {
    peer_ended && error.is_none_or(|e| e.raw_os_error() == Some(libc::EPIPE))
}

/// An epoll set reporting only hang-ups, read hang-ups and errors of `fds` (data is `0` and `1`).
fn epoll_for_hangups(fds: [RawFd; 2]) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ep` is a new descriptor nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for (i, fd) in fds.into_iter().enumerate() {
        let mut ev = libc::epoll_event { events: (libc::EPOLLRDHUP | libc::EPOLLET) as u32, u64: i as u64 };
        // SAFETY: `ev` is a valid event for the duration of the call.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ep)
}

/// The socket's `TCP_INFO`.
pub(crate) fn tcp_info(fd: RawFd) -> io::Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len)
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(info) }
}

/// Bytes in the socket's send queue not yet acknowledged (`SIOCOUTQ`).
fn outq(fd: RawFd) -> io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(n.max(0) as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    /// A connected (accepted, dialled) pair of non-blocking loopback sockets: `(ours, theirs)`.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let theirs = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (ours, theirs)
    }

    fn read_exact_timeout(s: &mut TcpStream, n: usize) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0; n];
        s.read_exact(&mut buf).unwrap();
        buf
    }

    /// Client <-> [client socket | kernel | server socket] <-> server, with bytes queued before the sockets
    /// enter the map, both directions, and a close propagated with the last bytes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_kernel_forwards_both_ways_including_bytes_queued_before() {
        let map = Arc::new(SockHash::new(64).expect("kernel forwarding must load here (root, linux >= 5.13)"));
        let (client_side, mut client) = pair();
        let (server_side, mut server) = pair();
        client.write_all(b"startup").unwrap();
        std::thread::sleep(Duration::from_millis(20)); // the bytes are in client_side's receive queue
        let m = map.clone();
        let task = tokio::spawn(async move { splice(&m, client_side, server_side, std::future::pending()).await });
        assert_eq!(read_exact_timeout(&mut server, 7), b"startup");
        server.write_all(b"reply").unwrap();
        assert_eq!(read_exact_timeout(&mut client, 5), b"reply");
        let big = vec![42u8; 1 << 20];
        let writer = {
            let mut c = client.try_clone().unwrap();
            let big = big.clone();
            std::thread::spawn(move || c.write_all(&big).unwrap())
        };
        assert_eq!(read_exact_timeout(&mut server, big.len()), big);
        writer.join().unwrap();
        // The server's last words and its close reach the client, then the client closes too.
        server.write_all(b"bye").unwrap();
        server.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye");
        drop(client);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("splice did not end").unwrap();
        assert_eq!(ended, Ended::Closed);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    /// Fencing: once the cancel completes and splice returns, nothing the client sends reaches the server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_fencing_no_byte_reaches_the_server() {
        let map = Arc::new(SockHash::new(64).unwrap());
        let (client_side, mut client) = pair();
        let (server_side, mut server) = pair();
        let (fence, fenced) = tokio::sync::oneshot::channel::<()>();
        let m = map.clone();
        let task =
            tokio::spawn(async move { splice(&m, client_side, server_side, async move { drop(fenced.await) }).await });
        client.write_all(b"before").unwrap();
        assert_eq!(read_exact_timeout(&mut server, 6), b"before");
        fence.send(()).unwrap();
        assert_eq!(task.await.unwrap(), Ended::Fenced);
        // The client may or may not notice at once; whatever it writes now must not arrive.
        let _ = client.write_all(b"after");
        server.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 16];
        match server.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{n} bytes reached the server after fencing: {:?}", &buf[..n]),
        }
    }
}
