//! The postmaster's life cycle on a real PostgreSQL: a start cancelled before `postmaster.pid` appears (the
//! keeper shutting down in the middle of a restart) must not leave an orphan postmaster behind.

use std::path::Path;
use std::time::Duration;

use stolon_conformance::servers::{free_port, postgres_bin_dir};
use stolon_core::postgres::process::InitdbOptions;
use stolon_core::postgres::{OsUser, PgProcess, StopMode};

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

async fn initdb(dir: &Path) -> anyhow::Result<PgProcess> {
    // PostgreSQL refuses to run as root: as root the instance belongs to the `postgres` user.
    let os_user = stolon_core::postgres::os_user::running_as_root().then(|| OsUser::lookup("postgres")).transpose()?;
    if let Some(u) = &os_user {
        u.chown(dir)?;
    }
    let pg = PgProcess::new(Some(postgres_bin_dir()?), dir.join("postgres"), os_user);
    let opts = InitdbOptions {
        su_user: "postgres".into(),
        locale: "C".into(),
        encoding: "UTF8".into(),
        ..InitdbOptions::default()
    };
    pg.initdb(&opts).await?;
    let conf = dir.join("postgres/postgresql.conf");
    let mut text = std::fs::read_to_string(&conf)?;
    text.push_str(&format!("\nport = {}\nlisten_addresses = ''\n", free_port()));
    std::fs::write(&conf, text)?;
    Ok(pg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cancelled_before_the_pid_file_is_stopped_not_orphaned() -> anyhow::Result<()> {
    // As under nohup or in a non-interactive shell's background job: SIGINT ignored, a disposition the
    // postmaster inherits until it installs its own handler, so a fast-shutdown request sent before that is lost.
    // SAFETY: setting a signal disposition to SIG_IGN; this binary has no other test and no SIGINT handler.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let dir = tempfile::tempdir()?;
    let pg = initdb(dir.path()).await?;
    // A zero timeout polls the start once: the postmaster is spawned, then the start is dropped at its first
    // wait, long before the postmaster writes postmaster.pid.
    let cancelled = tokio::time::timeout(Duration::ZERO, pg.start(None)).await;
    assert!(cancelled.is_err(), "the start was not cancelled: {cancelled:?}");
    let pid = pg.child_pid().await.expect("the cancelled start's postmaster is still recorded as our child");
    pg.stop(StopMode::Fast).await?;
    assert!(pg.child_pid().await.is_none(), "stop left the child recorded");
    // The exit watch reaped it: no process with its pid, and none starts up later either.
    for _ in 0..20 {
        assert!(!alive(pid), "postmaster {pid} survived the stop");
        assert!(!pg.is_running().await?, "a postmaster runs on the data directory after the stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The data directory is unharmed: a normal start and stop work.
    pg.start(None).await?;
    assert!(pg.is_running().await?);
    pg.stop(StopMode::Fast).await?;
    assert!(!pg.is_running().await?);
    Ok(())
}
