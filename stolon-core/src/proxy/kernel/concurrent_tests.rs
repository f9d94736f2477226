//! Kernel forwarding under concurrency: several connections at once, each making many small request and
//! response exchanges (what pgbench `-S` does), on real loopback sockets through one shared map.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bpf::SockHash;
use super::splice::{Ended, splice};

/// Connections at once, exchanges per connection, and the sizes of a request and of its response.
const CONNECTIONS: usize = 8;
const EXCHANGES: usize = 20_000;
const REQUEST: usize = 60;
const RESPONSE: usize = 90;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let theirs = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (ours, _) = l.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    theirs.set_nodelay(true).unwrap();
    (ours, theirs)
}

/// The byte at `at` of exchange `i` of connection `c`, so that a byte of another connection, of another
/// exchange or out of place is noticed.
fn byte(c: usize, i: usize, at: usize) -> u8 {
    (c * 31 + i * 7 + at) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_exchanging_small_messages_all_complete_and_close_normally() {
    let map = Arc::new(SockHash::new(256).expect("kernel forwarding must load here (root, linux >= 5.13)"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tasks = Vec::new();
    let mut peers = Vec::new();
    for c in 0..CONNECTIONS {
        let (client_side, client) = pair();
        let (server_side, server) = pair();
        let m = map.clone();
        tasks.push(tokio::spawn(async move { splice(&m, client_side, server_side, std::future::pending()).await }));
        // The server answers every request, after checking it, with the response of the same exchange.
        let server = std::thread::spawn(move || {
            let mut server = server;
            server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (mut req, mut resp) = (vec![0u8; REQUEST], vec![0u8; RESPONSE]);
            for i in 0..EXCHANGES {
                server.read_exact(&mut req).unwrap_or_else(|e| panic!("server {c}: exchange {i}: {e}"));
                assert!(req.iter().enumerate().all(|(at, b)| *b == byte(c, i, at)), "server {c}: request {i}");
                resp.iter_mut().enumerate().for_each(|(at, b)| *b = byte(c, i, at + 1));
                server.write_all(&resp).unwrap();
            }
            server
        });
        let client = std::thread::spawn(move || {
            let mut client = client;
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let (mut req, mut resp) = (vec![0u8; REQUEST], vec![0u8; RESPONSE]);
            for i in 0..EXCHANGES {
                assert!(Instant::now() < deadline, "client {c}: only {i} exchanges in time");
                req.iter_mut().enumerate().for_each(|(at, b)| *b = byte(c, i, at));
                client.write_all(&req).unwrap_or_else(|e| panic!("client {c}: exchange {i}: {e}"));
                client.read_exact(&mut resp).unwrap_or_else(|e| panic!("client {c}: exchange {i}: {e}"));
                assert!(resp.iter().enumerate().all(|(at, b)| *b == byte(c, i, at + 1)), "client {c}: response {i}");
            }
            client
        });
        peers.push((client, server));
    }
    for (c, (client, server)) in peers.into_iter().enumerate() {
        let client = tokio::task::spawn_blocking(move || client.join()).await.unwrap();
        let server = tokio::task::spawn_blocking(move || server.join()).await.unwrap();
        let (client, server) = (client.unwrap_or_else(|_| panic!("client {c} failed")), server.unwrap());
        drop((client, server));
    }
    for (c, task) in tasks.into_iter().enumerate() {
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await.expect("splice did not end").unwrap();
        assert_eq!(ended, Ended::Closed, "connection {c}");
    }
}
