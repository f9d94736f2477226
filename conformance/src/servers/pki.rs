//! A throw-away PKI for TLS tests, made with the `openssl` command line in a temporary directory: a CA, a
//! server certificate for 127.0.0.1 and localhost, and a client certificate.

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

/// PEM files of a test CA, a server and a client certificate; removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the CA and both certificates (EC P-256, valid two days).
    pub fn create() -> anyhow::Result<TestPki> {
        let dir = tempfile::Builder::new().prefix("stolon-pki-").tempdir()?;
        make_certificates(dir.path())?;
        Ok(TestPki { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// The server certificate (SANs 127.0.0.1 and localhost).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The client certificate (extended key usage clientAuth).
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client key.
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().context("running openssl")?;
    ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"][..],
            &["-subj", "/CN=stolon-test-ca"],
        ]
        .concat(),
    )?;
    for (name, ext) in
        [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")]
    {
        let subj = format!("/CN=stolon-test-{name}");
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(dir, &[&["req", "-new"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &subj][..]].concat())?;
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n"))?;
        let extfile = format!("{name}.ext");
        let sign = [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ];
        openssl(dir, &sign)?;
    }
    Ok(())
}
