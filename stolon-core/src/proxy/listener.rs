//! The client listener: started by the first check that reached the store, stopped by the watchdog
//! (`--stop-listening`) and started again by the next successful check. Stopping closes the listening
//! socket at once; its accept task ends with it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::balance::Balancer;
use super::forward::Forwarder;

/// What takes over the accepted connections of a listener: the master port's [`Forwarder`] or the
/// read-only port's [`Balancer`].
pub trait Accept: Send + Sync + 'static {
    /// Takes over one accepted client connection.
    fn accept(&self, client: TcpStream);
}

impl Accept for Forwarder {
    fn accept(&self, client: TcpStream) {
        self.handle(client)
    }
}

impl Accept for Balancer {
    fn accept(&self, client: TcpStream) {
        self.handle(client)
    }
}

/// Pending-connection queue length of the listening socket.
const BACKLOG: u32 = 1024;

/// The listening socket of the proxy and its accept loop.
pub struct Listener {
    address: SocketAddr,
    handler: Arc<dyn Accept>,
    running: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Listener {
    /// A stopped listener for `address` handing connections to `handler`.
    pub fn new(address: SocketAddr, handler: impl Accept) -> Listener {
        Listener { address, handler: Arc::new(handler), running: None }
    }

    /// Binds and starts accepting, unless already listening.
    pub fn ensure_started(&mut self) -> std::io::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let socket = if self.address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(self.address)?;
        let listener = socket.listen(BACKLOG)?;
        let local = listener.local_addr()?;
        let handler = self.handler.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => handler.accept(stream),
                    Err(e) => {
                        // Out of descriptors or an aborted handshake: back off a little and keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        tracing::info!(address = %local, "listening");
        self.running = Some((local, task));
        Ok(())
    }

    /// Closes the listening socket (already accepted connections are not touched) and waits for its
    /// accept task to end.
    pub async fn stop(&mut self) {
        if let Some((local, task)) = self.running.take() {
            task.abort();
            let _ = task.await;
            tracing::info!(address = %local, "stopped listening");
        }
    }

    /// The bound address while listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|(a, _)| *a)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::forward::{ForwardStats, Keepalive};
    use crate::proxy::kernel::Forwarding;
    use std::sync::Arc;

    #[tokio::test]
    async fn stop_closes_the_socket_and_start_reopens_it() {
        let fwd = Forwarder::new(Keepalive::default(), Arc::new(ForwardStats::default()), Forwarding::userspace());
        let mut l = Listener::new("127.0.0.1:0".parse().unwrap(), fwd);
        l.ensure_started().unwrap();
        let addr = l.local_addr().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        l.stop().await;
        assert!(l.local_addr().is_none());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting after stop");
        let mut again = Listener::new(
            addr,
            Forwarder::new(Keepalive::default(), Arc::new(ForwardStats::default()), Forwarding::userspace()),
        );
        again.ensure_started().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fwd = Forwarder::new(Keepalive::default(), Arc::new(ForwardStats::default()), Forwarding::userspace());
        let mut l = Listener::new(taken.local_addr().unwrap(), fwd);
        assert!(l.ensure_started().is_err());
    }
}
