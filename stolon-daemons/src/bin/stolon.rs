//! `stolon`: the multi-call binary (docs/packaging.md). The four components' mains are compiled in as
//! modules; `stolon-keeper ARGS` (a link) runs the keeper, and `stolon keeper ARGS` re-executes this program
//! as `stolon-keeper ARGS` so each component parses the command line it would get as its own binary.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use stolon_daemons::multicall::{self, Component, Dispatch};

#[path = "stolon-keeper.rs"]
mod keeper;
#[path = "stolon-proxy.rs"]
mod proxy;
#[path = "stolon-sentinel.rs"]
mod sentinel;
#[path = "stolonctl.rs"]
mod stolonctl;

fn run(c: Component) -> ExitCode {
    match c {
        Component::Keeper => keeper::main(),
        Component::Sentinel => sentinel::main(),
        Component::Proxy => proxy::main(),
        Component::Ctl => stolonctl::main(),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "stolon".into());
    match multicall::dispatch(&argv0, args.get(1).map(OsString::as_os_str)) {
        Dispatch::Run(c) => run(c),
        Dispatch::Subcommand(c) => {
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("stolon: cannot find this program's path to run {}: {e}", c.program());
                    return ExitCode::FAILURE;
                }
            };
            let e = std::process::Command::new(&exe).arg0(c.program()).args(&args[2..]).exec();
            eprintln!("stolon: cannot run {} as {}: {e}", exe.display(), c.program());
            ExitCode::FAILURE
        }
        Dispatch::Usage => {
            print!("{}", multicall::usage());
            ExitCode::SUCCESS
        }
        Dispatch::Version => {
            println!("stolon version {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Dispatch::Unknown(arg) => {
            eprint!("stolon: unknown component {arg:?}\n\n{}", multicall::usage());
            ExitCode::from(2)
        }
    }
}
