//! Flags from the environment: every flag `--some-flag` of a binary can also be given as
//! `<PREFIX>_SOME_FLAG` (`STKEEPER_`, `STSENTINEL_`, `STPROXY_`, `STOLONCTL_`), as in stolon. The command
//! line wins over the environment. Unlike stolon, subcommand flags are covered too.

use clap::Command;

/// The environment prefix of the keeper.
pub const KEEPER: &str = "STKEEPER";
/// The environment prefix of the sentinel.
pub const SENTINEL: &str = "STSENTINEL";
/// The environment prefix of the proxy.
pub const PROXY: &str = "STPROXY";
/// The environment prefix of stolonctl.
pub const STOLONCTL: &str = "STOLONCTL";

/// The variable name of a flag: `PREFIX_FLAG_NAME`.
pub fn var_name(prefix: &str, long: &str) -> String {
    format!("{prefix}_{}", long.to_uppercase().replace('-', "_"))
}

/// Gives every long flag of `cmd` (and of its subcommands) an environment variable with `prefix`, unless it
/// already has one. Help and version flags are left alone.
pub fn with_env_prefix(cmd: Command, prefix: &str) -> Command {
    let cmd = cmd.mut_args(|arg| {
        let Some(long) = arg.get_long() else { return arg };
        if arg.get_env().is_some() || matches!(long, "help" | "version") || arg.is_positional() {
            return arg;
        }
        let name: &'static str = Box::leak(var_name(prefix, long).into_boxed_str());
        arg.env(name)
    });
    cmd.mut_subcommands(|sub| with_env_prefix(sub, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_stolon() {
        assert_eq!(var_name(KEEPER, "pg-repl-passwordfile"), "STKEEPER_PG_REPL_PASSWORDFILE");
        assert_eq!(var_name(STOLONCTL, "cluster-name"), "STOLONCTL_CLUSTER_NAME");
    }
}
