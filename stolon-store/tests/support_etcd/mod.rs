//! A real etcd started with custom flags (no v2 API, TLS), for the cases `EtcdServer` does not cover.

use std::process::{Child, Command, Stdio};

use stolon_conformance::servers::free_port;

/// An etcd on free loopback ports in a temporary directory, killed on drop.
pub struct CustomEtcd {
    child: Child,
    /// `scheme://127.0.0.1:<client port>`.
    pub endpoint: String,
    /// The temporary directory (data and any files the test put there), removed on drop.
    _dir: tempfile::TempDir,
}

impl CustomEtcd {
    /// Starts etcd with client URLs of `scheme` and the extra flags `extra(dir)`. Fails (never skips) when
    /// etcd is not installed.
    pub fn start(scheme: &str, dir: tempfile::TempDir, extra: &[String]) -> CustomEtcd {
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
            .args(["--name", "custom", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("custom={peer_url}"), "--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd must be installed (apt-get install etcd-server)");
        CustomEtcd { child, endpoint, _dir: dir }
    }
}

impl Drop for CustomEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
