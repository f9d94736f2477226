//! The PostgreSQL test server helper: a real server, reachable over TCP with the superuser's password.

use stolon_conformance::servers::PostgresServer;

#[test]
fn postgres_server_starts_answers_over_tcp_and_restarts() {
    let server = PostgresServer::start().expect("PostgreSQL test server");
    let port = server.psql("SELECT inet_server_port()").expect("query over TCP");
    assert_eq!(port, server.port().to_string());
    let version = server.psql("SHOW server_version_num").expect("version");
    assert!(version.parse::<u32>().is_ok_and(|v| v >= 100000), "unexpected version {version}");

    server.stop().expect("stop");
    assert!(server.psql("SELECT 1").is_err(), "a stopped server must refuse connections");
    server.restart().expect("restart");
    assert_eq!(server.psql("SELECT 1").expect("query after restart"), "1");
}

#[test]
fn postgres_server_rejects_a_wrong_password() {
    let server = PostgresServer::start().expect("PostgreSQL test server");
    let out = std::process::Command::new(server.bin_dir().join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &server.port().to_string(), "-U", "postgres", "-c", "SELECT 1"])
        .env("PGPASSWORD", "wrong")
        .output()
        .expect("psql runs");
    assert!(!out.status.success(), "password authentication must be enforced over TCP");
}
