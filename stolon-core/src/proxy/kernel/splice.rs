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
//! - **Back-pressure** ([`backpressure`]): the program redirects within a grant per socket and keeps the
//!   bytes beyond it on the receiving socket (whose window then closes); this task raises the grants and
//!   copies the kept bytes, measuring both directions every few milliseconds.
//! - **Fencing** ([`Splice::close`]): both sockets leave the map, then close; the master's socket closes
//!   with a reset (`SO_LINGER` 0), so bytes still queued towards it are discarded, never delivered.

use std::future::Future;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::backpressure::{self, Direction, POLL_BUSY, POLL_IDLE, QUEUE_LIMIT};
use super::bpf::{Grant, SockHash, socket_cookie};

/// Largest read of kept bytes at once.
const COPY_CHUNK: u64 = 256 * 1024;
/// Most kept bytes copied per direction in one measurement (the task then yields to the others).
const COPY_ROUND: u64 = 16 * COPY_CHUNK;

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
    let mut splice = splice;
    let ended = tokio::select! {
        biased;
        () = cancel => Ended::Fenced,
        ended = splice.watch(map) => ended,
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
    /// Bytes each socket had put in its send queue when it entered the map.
    sent_before: [u64; 2],
    /// Per receiving socket: its grant as last written, and kept bytes read but not yet sent to the peer.
    flows: [Flow; 2],
}

#[derive(Debug, Default)]
struct Flow {
    grant: Grant,
    pending: Vec<u8>,
}

impl Splice {
    fn enter(map: &SockHash, client: TcpStream, server: TcpStream) -> io::Result<Splice> {
        let cookies = [socket_cookie(client.as_raw_fd())?, socket_cookie(server.as_raw_fd())?];
        let events = epoll_for_hangups([client.as_raw_fd(), server.as_raw_fd()])?;
        // SAFETY: `events` is an open epoll descriptor owned by the AsyncFd for its whole life.
        let events = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let sent_before = [sent(&tcp_info(client.as_raw_fd())?), sent(&tcp_info(server.as_raw_fd())?)];
        let grant = Grant { granted: QUEUE_LIMIT, copied: 0 };
        let flows = [Flow { grant, pending: Vec::new() }, Flow { grant, pending: Vec::new() }];
        let splice = Splice { sockets: [client, server], cookies, events, sent_before, flows };
        // Grants and counts first (the program keeps whatever arrives for a socket without them), then the
        // server (under the client's cookie), then the client (under the server's).
        let entered = cookies
            .iter()
            .try_for_each(|c| map.start_count(*c).and_then(|()| map.grant(*c, grant)))
            .and_then(|()| map.insert(cookies[0], splice.sockets[1].as_raw_fd()))
            .and_then(|()| map.insert(cookies[1], splice.sockets[0].as_raw_fd()));
        if let Err(e) = entered {
            splice.close(map, false);
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

    /// Measures both directions, raises their grants and copies their kept bytes ([`backpressure::plan`]).
    /// Returns true when a direction should be measured again soon.
    fn regulate(&mut self, map: &SockHash) -> io::Result<bool> {
        let infos = [tcp_info(self.sockets[0].as_raw_fd())?, tcp_info(self.sockets[1].as_raw_fd())?];
        let mut busy = false;
        for side in 0..2 {
            let peer = 1 - side;
            let mut d = Direction {
                count: map.count(self.cookies[side])?,
                grant: self.flows[side].grant,
                forwarded: sent(&infos[peer]).saturating_sub(self.sent_before[peer]),
                pending: self.flows[side].pending.len() as u64,
            };
            let plan = backpressure::plan(&d);
            let mut grant = d.grant;
            if plan.copy > 0 || d.pending > 0 {
                let copied = self.copy_kept(map, side, plan.copy)?;
                grant.copied += copied;
                d.grant.copied += copied;
                d.forwarded += copied;
            }
            if let Some(granted) = backpressure::plan(&d).granted {
                grant.granted = granted;
            }
            if grant != self.flows[side].grant {
                map.grant(self.cookies[side], grant)?;
                self.flows[side].grant = grant;
            }
            busy |= plan.busy;
        }
        Ok(busy)
    }

    /// Copies kept bytes of socket `side` to its peer (the redirect queue is empty: they come next): the
    /// pending ones first, then `more` and whatever the kernel keeps meanwhile, until the socket has no
    /// kept byte left, the peer's send buffer is full (what it did not take stays pending) or
    /// [`COPY_ROUND`] bytes were copied. Returns the bytes the peer took.
    fn copy_kept(&mut self, map: &SockHash, side: usize, mut more: u64) -> io::Result<u64> {
        let (from, to) = (self.sockets[side].as_raw_fd(), self.sockets[1 - side].as_raw_fd());
        let (cookie, copied_before) = (self.cookies[side], self.flows[side].grant.copied);
        let pending = &mut self.flows[side].pending;
        let mut copied = 0;
        while copied < COPY_ROUND {
            if pending.is_empty() {
                if more == 0 {
                    // Chunks kept since the plan was made (the program keeps until `copied` catches up).
                    more = map.count(cookie)?.kept.saturating_sub(copied_before + copied);
                    if more == 0 {
                        return Ok(copied);
                    }
                }
                pending.resize(more.min(COPY_CHUNK) as usize, 0);
                // SAFETY: recv writes at most `pending.len()` bytes into `pending`.
                let n = unsafe { libc::recv(from, pending.as_mut_ptr().cast(), pending.len(), libc::MSG_DONTWAIT) };
                let error = io::Error::last_os_error();
                pending.truncate(n.max(0) as usize);
                match n {
                    0 => return Ok(copied),
                    n if n < 0 => return if would_block(&error) { Ok(copied) } else { Err(error) },
                    n => more = more.saturating_sub(n as u64),
                }
            }
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            // SAFETY: send reads at most `pending.len()` bytes from `pending`.
            let n = unsafe { libc::send(to, pending.as_ptr().cast(), pending.len(), flags) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return if would_block(&e) { Ok(copied) } else { Err(e) };
            }
            pending.drain(..n as usize);
            copied += n as u64;
            if !pending.is_empty() {
                return Ok(copied);
            }
        }
        Ok(copied)
    }

    /// Waits until both directions have closed (each after draining) or a socket fails, regulating both
    /// directions meanwhile.
    async fn watch(&mut self, map: &SockHash) -> Ended {
        // Per side: its peer has seen EOF (its bytes are all in the other socket's queue and the other
        // socket's write side is shut).
        let mut done = [false; 2];
        let mut draining = [false; 2];
        let mut next_poll = tokio::time::Instant::now() + POLL_BUSY;
        loop {
            if tokio::time::Instant::now() >= next_poll {
                match self.regulate(map) {
                    Ok(busy) => next_poll = tokio::time::Instant::now() + if busy { POLL_BUSY } else { POLL_IDLE },
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot regulate a kernel-forwarded connection; closing it");
                        return Ended::Failed;
                    }
                }
            }
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
            let deadline = match draining.contains(&true) {
                true => next_poll.min(tokio::time::Instant::now() + DRAIN_POLL),
                false => next_poll,
            };
            let ready = tokio::time::timeout_at(deadline, self.events.readable()).await.ok();
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
                let peer = 1 - side;
                // The peer's end of stream may be reported in a later batch than the EPIPE it causes on this
                // socket: ask the peer socket itself.
                if error.is_some() && !draining[peer] && !done[peer] && read_hung_up(&self.sockets[peer]) {
                    draining[peer] = true;
                }
                let peer_ended = draining[peer] || done[peer];
                if (ev.events as libc::c_int & libc::EPOLLERR != 0 || error.is_some())
                    && !benign(error.as_ref(), peer_ended)
                {
                    let side = if side == 0 { "client" } else { "server" };
                    let events = ev.events;
                    tracing::debug!(
                        side,
                        events,
                        ?error,
                        peer_ended,
                        "a kernel-forwarded socket failed; closing the connection"
                    );
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
        for key in self.cookies {
            if let Err(e) = map.forget(key) {
                tracing::warn!(error = %e, "cannot remove a socket's grant from the kernel forwarding maps");
            }
        }
        if reset {
            let _ = socket2::SockRef::from(&self.sockets[1]).set_linger(Some(Duration::ZERO));
        }
    }
}

/// When a socket's peer receives the end of stream, the kernel redirects it as an empty chunk and reports
/// `EPIPE` on the socket (`peer_ended`): not a failure. Any other error is.
fn benign(error: Option<&io::Error>, peer_ended: bool) -> bool {
    peer_ended && error.is_none_or(|e| e.raw_os_error() == Some(libc::EPIPE))
}

/// True when `socket` has received the end of stream (`POLLRDHUP` now).
fn read_hung_up(socket: &TcpStream) -> bool {
    let mut fd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: poll reads and writes the one pollfd given; timeout 0 never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
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

/// Bytes a socket has put in its send queue (sent once, or not sent yet), from its `TCP_INFO`.
fn sent(info: &libc::tcp_info) -> u64 {
    info.tcpi_bytes_sent.saturating_sub(info.tcpi_bytes_retrans) + u64::from(info.tcpi_notsent_bytes)
}

fn would_block(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
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

    /// Back-pressure: a server writes for a second to a client that never reads. The redirect queue stays
    /// within the limit (the server stalls), and once the client reads, every byte arrives, in order, and
    /// the connection still works both ways.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_never_reads_stalls_the_server_and_loses_nothing() {
        let map = Arc::new(SockHash::new(64).unwrap());
        let (client_side, mut client) = pair();
        let (server_side, server) = pair();
        let (from, to) = (server_side.try_clone().unwrap(), client_side.try_clone().unwrap());
        let sent_before = sent(&tcp_info(to.as_raw_fd()).unwrap());
        let m = map.clone();
        let task = tokio::spawn(async move { splice(&m, client_side, server_side, std::future::pending()).await });
        // The server writes a counting byte pattern, non-blocking, for one second.
        let writer = std::thread::spawn(move || {
            let mut server = server;
            server.set_nonblocking(true).unwrap();
            let (mut written, start) = (0u64, std::time::Instant::now());
            let chunk: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
            while start.elapsed() < Duration::from_secs(1) {
                let at = (written % 65536) as usize;
                match server.write(&chunk[at..]) {
                    Ok(n) => written += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(200)),
                    Err(e) => panic!("server write: {e}"),
                }
            }
            (server, written)
        });
        // Meanwhile, every millisecond: the redirect queue, from the program's own count of what it
        // redirected and the client socket's count of what it put in its send queue.
        let mut largest = 0;
        while !writer.is_finished() {
            let redirected = map.count(socket_cookie(from.as_raw_fd()).unwrap()).map(|c| c.redirected).unwrap_or(0);
            let delivered = sent(&tcp_info(to.as_raw_fd()).unwrap()) - sent_before;
            largest = largest.max(redirected.saturating_sub(delivered));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (mut server, written) = writer.join().unwrap();
        // Blocking again: the reads below wait (with a timeout) rather than fail while bytes are on their way.
        server.set_nonblocking(false).unwrap();
        let kept = map.count(socket_cookie(from.as_raw_fd()).unwrap()).unwrap().kept;
        eprintln!("written {written} bytes, largest redirect queue {largest} bytes, {kept} bytes kept");
        assert!(largest <= QUEUE_LIMIT + 65536, "the redirect queue reached {largest} bytes");
        assert!(kept > 0, "the grant never ran out: the test did not reach the bound");
        // Everything the server got rid of is in a bounded place: its own send buffer, the proxy's server
        // socket's receive buffer (kept bytes), the redirect queue, the proxy's client socket's send buffer
        // and the client's receive buffer.
        let max = |sysctl: &str| -> u64 {
            let v = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{sysctl}")).unwrap();
            v.split_whitespace().last().unwrap().parse().unwrap()
        };
        let bound = 2 * (max("tcp_wmem") + max("tcp_rmem")) + QUEUE_LIMIT + 65536;
        assert!(written <= bound, "the server wrote {written} bytes to a client that never read (bound {bound})");
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = vec![0; written as usize];
        let mut at = 0;
        while at < got.len() {
            match client.read(&mut got[at..]) {
                Ok(n) if n > 0 => at += n,
                r => {
                    let count = map.count(socket_cookie(from.as_raw_fd()).unwrap());
                    let sent_to = sent(&tcp_info(to.as_raw_fd()).unwrap()) - sent_before;
                    panic!(
                        "read {at} of {written} bytes ({r:?}); server socket {count:?}; client socket sent {sent_to}"
                    );
                }
            }
        }
        assert!(got.iter().enumerate().all(|(i, b)| *b == i as u8), "bytes out of order or corrupted");
        client.write_all(b"ping").unwrap();
        assert_eq!(read_exact_timeout(&mut server, 4), b"ping");
        // Once the proxy has copied every kept byte, the kernel redirects again.
        let server_cookie = socket_cookie(from.as_raw_fd()).unwrap();
        let start = std::time::Instant::now();
        while map.granted(server_cookie).unwrap().copied != map.count(server_cookie).unwrap().kept {
            assert!(start.elapsed() < Duration::from_secs(5), "the proxy never copied every kept byte");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let before = map.count(server_cookie).unwrap();
        server.write_all(b"pong").unwrap();
        assert_eq!(read_exact_timeout(&mut client, 4), b"pong");
        let after = map.count(server_cookie).unwrap();
        assert_eq!(
            (after.redirected, after.kept),
            (before.redirected + 4, before.kept),
            "the kernel path did not resume"
        );
        drop(client);
        drop(server);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("splice did not end").unwrap();
        assert_eq!(ended, Ended::Closed);
    }

    /// A client reading in bursts with pauses: the direction goes through many rounds of redirecting,
    /// keeping and copying; every byte arrives in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_gets_every_byte_in_order_through_keeping_and_copying() {
        let map = Arc::new(SockHash::new(64).unwrap());
        let (client_side, mut client) = pair();
        let (server_side, mut server) = pair();
        let server_cookie = socket_cookie(server_side.as_raw_fd()).unwrap();
        let m = map.clone();
        let task = tokio::spawn(async move { splice(&m, client_side, server_side, std::future::pending()).await });
        const TOTAL: usize = 48 << 20;
        let writer = std::thread::spawn(move || {
            let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
            server.write_all(&data).unwrap();
            server
        });
        let reader = std::thread::spawn(move || {
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (mut got, mut buf, mut reads) = (0usize, vec![0u8; 256 * 1024], 0u32);
            while got < TOTAL {
                let n = client.read(&mut buf).unwrap();
                assert!(n > 0, "the connection ended after {got} bytes");
                assert!(buf[..n].iter().enumerate().all(|(i, b)| *b == ((got + i) % 251) as u8), "at {got}");
                got += n;
                reads += 1;
                if reads % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
            client
        });
        let client = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
        let server = writer.join().unwrap();
        let count = map.count(server_cookie).unwrap();
        eprintln!("{count:?}");
        assert!(count.kept > 0, "the reader never made the kernel keep bytes: the test missed its point");
        drop((client, server));
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("splice did not end").unwrap();
        assert_eq!(ended, Ended::Closed);
    }
}
