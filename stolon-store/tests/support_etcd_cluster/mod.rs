//! A real etcd cluster of several members, whose members a test can freeze to take the quorum away.

use std::process::{Child, Command, Stdio};

use stolon_conformance::servers::free_port;

/// A real etcd cluster of several members on free loopback ports, killed on drop.
pub struct EtcdCluster {
    members: Vec<Child>,
    /// `http://127.0.0.1:<client port>` of each member, in member order.
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members forming one cluster. Fails (never skips) when etcd is not installed.
    pub fn start(size: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", ports[i].1);
        let initial = (0..size).map(|i| format!("m{i}={}", peer_url(i))).collect::<Vec<_>>().join(",");
        let mut members = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, _)) in ports.iter().enumerate() {
            let endpoint = format!("http://127.0.0.1:{client}");
            let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
                .args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
                .args(["--listen-peer-urls", &peer_url(i), "--initial-advertise-peer-urls", &peer_url(i)])
                .args(["--initial-cluster", &initial, "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "stolon-store-test", "--log-level", "warn"])
                // As the conformance servers: no fsync, so that a loaded disk does not starve the cluster.
                .arg("--unsafe-no-fsync")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd must be installed (apt-get install etcd-server)");
            members.push(child);
            endpoints.push(endpoint);
        }
        EtcdCluster { members, endpoints, _dir: dir }
    }

    /// Freezes member `i` (SIGSTOP): it neither answers nor votes until [`EtcdCluster::resume`].
    pub fn freeze(&self, i: usize) {
        signal(&self.members[i], "-STOP");
    }

    /// Resumes member `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        signal(&self.members[i], "-CONT");
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill {signal} {} failed", child.id());
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.members {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
