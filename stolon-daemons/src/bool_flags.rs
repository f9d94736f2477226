//! Boolean flags with the syntax of stolon's Go flag library (pflag), so that existing manifests keep
//! working: `--flag` means true, `--flag=VALUE` takes every spelling of Go's `strconv.ParseBool` (`1`, `t`,
//! `T`, `TRUE`, `true`, `True`, `0`, `f`, `F`, `FALSE`, `false`, `False`), and the environment variable of
//! the flag takes the same spellings (an empty variable is ignored, as stolon does).
//!
//! A value after a space (`--can-be-master false`) is refused with an error naming the flag and the stray
//! value: pflag would silently read it as `--can-be-master` (true) followed by a stray argument.
//!
//! Depends on clap and std only: `stolon-conformance` includes this file too.

use std::any::TypeId;
use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The spellings of true accepted by Go's `strconv.ParseBool`.
pub const TRUE_SPELLINGS: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
/// The spellings of false accepted by Go's `strconv.ParseBool`.
pub const FALSE_SPELLINGS: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

/// Parses a boolean like Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    if TRUE_SPELLINGS.contains(&s) {
        Ok(true)
    } else if FALSE_SPELLINGS.contains(&s) {
        Ok(false)
    } else {
        Err(format!("{s:?} is not a boolean (use true or false; also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"))
    }
}

/// The value name shown in help for a boolean flag: `--debug[=<BOOL>]`.
const VALUE_NAME: &str = "BOOL";

/// True for an argument holding a boolean: a derive `bool` field (`SetTrue`) or an explicit boolean value
/// parser (`Option<bool>`, or `bool` with `action = Set`).
fn is_boolean(arg: &Arg) -> bool {
    !arg.is_positional()
        && (matches!(arg.get_action(), ArgAction::SetTrue)
            || (matches!(arg.get_action(), ArgAction::Set) && arg.get_value_parser().type_id() == TypeId::of::<bool>()))
}

/// True for a boolean flag converted by [`go_bool_flags`].
fn is_go_bool(arg: &Arg) -> bool {
    arg.get_value_names().is_some_and(|n| n == [VALUE_NAME]) && arg.is_require_equals_set()
}

/// Gives every boolean flag of `cmd` and of its subcommands Go's syntax (see the module documentation). A
/// `bool` field's default stays false unless the field sets another (`default_value_t = true`). Call it
/// after the environment variables were attached ([`crate::env::with_env_prefix`]).
pub fn go_bool_flags(cmd: Command) -> Command {
    let cmd = cmd.mut_args(|arg| {
        if !is_boolean(&arg) {
            return arg;
        }
        let implicit_false = matches!(arg.get_action(), ArgAction::SetTrue) && arg.get_default_values().is_empty();
        // stolon ignores an empty environment variable; a Go boolean parser would refuse it.
        let empty_env = arg.get_env().is_some_and(|name| std::env::var_os(name).is_some_and(|v| v.is_empty()));
        let mut arg = arg
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name(VALUE_NAME)
            .value_parser(parse_go_bool);
        if implicit_false {
            arg = arg.default_value("false");
        }
        if empty_env {
            arg = arg.env(None::<&str>);
        }
        arg
    });
    cmd.mut_subcommands(go_bool_flags)
}

/// Refuses a value given after a space to a boolean flag of `cmd` (after [`go_bool_flags`]): a Go boolean
/// spelling, or any word where the command takes no positional argument. `args` includes the program name.
pub fn check_stray_values(cmd: &Command, args: &[OsString]) -> Result<(), clap::Error> {
    let mut path: Vec<&Command> = vec![cmd];
    let mut i = 1;
    while i < args.len() {
        let Some(token) = args[i].to_str() else {
            i += 1;
            continue;
        };
        if token == "--" {
            break;
        }
        let current = *path.last().unwrap_or(&cmd);
        let found = if let Some(long) = token.strip_prefix("--") {
            if long.contains('=') { None } else { find(&path, |a| a.get_long() == Some(long)).map(|a| (a, token)) }
        } else if let Some(shorts) = token.strip_prefix('-').filter(|s| !s.is_empty()) {
            short_needing_check(&path, shorts).map(|a| (a, token))
        } else {
            if let Some(sub) = current.find_subcommand(token) {
                path.push(sub);
            }
            None
        };
        match found {
            Some((arg, flag)) if is_go_bool(arg) => {
                if let Some(next) = args.get(i + 1).and_then(|n| n.to_str())
                    && is_stray(current, next)
                {
                    return Err(stray_error(cmd, flag, next));
                }
            }
            // A flag that takes its value from the next word: skip that word.
            Some((arg, _)) if takes_separate_value(arg) => i += 1,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The argument of a cluster of short flags (`-y`, `-vf`) that decides what the next word is: its last
/// flag when that one is a boolean flag or takes the next word as its value; `None` when the cluster carries
/// its own value (`-fFILE`, `-y=true`).
fn short_needing_check<'a>(path: &[&'a Command], shorts: &str) -> Option<&'a Arg> {
    for (n, c) in shorts.char_indices() {
        let arg = find(path, |a| a.get_short() == Some(c))?;
        let rest = &shorts[n + c.len_utf8()..];
        if rest.is_empty() {
            return Some(arg);
        }
        if takes_separate_value(arg) || rest.starts_with('=') {
            return None;
        }
    }
    None
}

/// An argument of the innermost command of `path` or a global one of its parents.
fn find<'a>(path: &[&'a Command], pred: impl Fn(&Arg) -> bool) -> Option<&'a Arg> {
    let (innermost, parents) = path.split_last()?;
    innermost
        .get_arguments()
        .find(|a| pred(a))
        .or_else(|| parents.iter().rev().flat_map(|c| c.get_arguments()).find(|a| a.is_global_set() && pred(a)))
}

/// True when the argument reads the next word as its value.
fn takes_separate_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
        && !arg.is_require_equals_set()
        && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

/// True when `next`, the word after a boolean flag, is a value meant for it.
fn is_stray(command: &Command, next: &str) -> bool {
    if next.starts_with('-') {
        return false;
    }
    let takes_it = command.get_positionals().next().is_some() || command.find_subcommand(next).is_some();
    parse_go_bool(next).is_ok() || !takes_it
}

fn stray_error(cmd: &Command, flag: &str, value: &str) -> clap::Error {
    let message = format!(
        "the boolean flag {flag} takes no separate value, but {value:?} follows it: write {flag}={value} \
         (a bare {flag} means true)"
    );
    cmd.clone().error(ErrorKind::InvalidValue, message)
}

/// Refuses the environment variable of a boolean flag of `cmd` (or of a subcommand) that holds no Go boolean,
/// naming the variable, unless the flag is also on the command line `args` (which wins over the
/// environment).
pub fn check_env_values(cmd: &Command, args: &[OsString]) -> Result<(), clap::Error> {
    let on_command_line = |arg: &Arg| {
        args.iter().skip(1).filter_map(|a| a.to_str()).take_while(|a| *a != "--").any(|a| {
            let long = a.strip_prefix("--").map(|l| l.split_once('=').map_or(l, |(name, _)| name));
            match long {
                Some(long) => arg.get_long() == Some(long),
                None => a.starts_with('-') && arg.get_short().is_some_and(|c| a[1..].starts_with(c)),
            }
        })
    };
    for arg in cmd.get_arguments().filter(|a| is_go_bool(a) && !on_command_line(a)) {
        let Some(name) = arg.get_env() else { continue };
        let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else { continue };
        if let Err(why) = parse_go_bool(&value.to_string_lossy()) {
            let flag = arg.get_long().unwrap_or_default();
            let message =
                format!("invalid value in the environment variable {} (--{flag}): {why}", name.to_string_lossy());
            return Err(cmd.clone().error(ErrorKind::InvalidValue, message));
        }
    }
    cmd.get_subcommands().try_for_each(|sub| check_env_values(sub, args))
}

/// Parses `args` (with the program name) with `cmd` after [`go_bool_flags`], [`check_stray_values`] and
/// [`check_env_values`]; clap's error on bad input.
pub fn try_get_matches_from(cmd: Command, args: Vec<OsString>) -> Result<ArgMatches, clap::Error> {
    let cmd = go_bool_flags(cmd);
    check_stray_values(&cmd, &args)?;
    check_env_values(&cmd, &args)?;
    cmd.try_get_matches_from(args)
}

/// Parses the process's arguments like [`try_get_matches_from`]; exits with clap's message and status (2)
/// on bad input.
pub fn get_matches(cmd: Command) -> ArgMatches {
    try_get_matches_from(cmd, std::env::args_os().collect()).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[arg(long)]
        debug: bool,
        #[arg(long, default_value_t = true)]
        can_be_master: bool,
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        log_color: Option<bool>,
        #[arg(long, default_value = "")]
        name: String,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Subcommand, Debug)]
    enum Sub {
        Init {
            spec: Option<String>,
            #[arg(short = 'y', long)]
            yes: bool,
            #[arg(short = 'f', long)]
            file: Option<String>,
        },
    }

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let args = std::iter::once("t").chain(args.iter().copied()).map(OsString::from).collect();
        let matches = try_get_matches_from(Cli::command(), args).map_err(|e| e.to_string())?;
        Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    #[test]
    fn every_go_spelling_is_accepted() {
        for s in TRUE_SPELLINGS {
            let cli = parse(&[&format!("--debug={s}"), &format!("--can-be-master={s}")]).unwrap();
            assert!(cli.debug && cli.can_be_master, "{s}");
            assert_eq!(parse(&[&format!("--log-color={s}")]).unwrap().log_color, Some(true), "{s}");
        }
        for s in FALSE_SPELLINGS {
            let cli = parse(&[&format!("--debug={s}"), &format!("--can-be-master={s}")]).unwrap();
            assert!(!cli.debug && !cli.can_be_master, "{s}");
            assert_eq!(parse(&[&format!("--log-color={s}")]).unwrap().log_color, Some(false), "{s}");
        }
        for bad in ["yes", "on", "", "tRUE", "2"] {
            let e = parse(&[&format!("--debug={bad}")]).unwrap_err();
            assert!(e.contains("--debug") && e.contains("not a boolean"), "{bad}: {e}");
        }
    }

    #[test]
    fn bare_flags_mean_true_and_defaults_hold() {
        let cli = parse(&[]).unwrap();
        assert!(!cli.debug && cli.can_be_master && cli.log_color.is_none());
        let cli = parse(&["--debug", "--can-be-master", "--log-color"]).unwrap();
        assert!(cli.debug && cli.can_be_master && cli.log_color == Some(true));
        let cli = parse(&["init", "-y"]).unwrap();
        assert!(matches!(cli.command, Some(Sub::Init { yes: true, .. })));
        let cli = parse(&["init", "-y=false"]).unwrap();
        assert!(matches!(cli.command, Some(Sub::Init { yes: false, .. })));
        let cli = parse(&["init", "--yes=F"]).unwrap();
        assert!(matches!(cli.command, Some(Sub::Init { yes: false, .. })));
    }

    #[test]
    fn a_separate_value_is_refused_naming_flag_and_value() {
        for (args, flag, value) in [
            (&["--can-be-master", "false"][..], "--can-be-master", "false"),
            (&["--debug", "True"][..], "--debug", "True"),
            (&["--debug", "maybe"][..], "--debug", "maybe"),
            (&["init", "--yes", "0"][..], "--yes", "0"),
            (&["init", "-y", "t"][..], "-y", "t"),
            (&["--name", "x", "--log-color", "FALSE"][..], "--log-color", "FALSE"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(flag) && e.contains(&format!("{value:?}")) && e.contains("separate value"), "{e}");
        }
    }

    #[test]
    fn words_that_are_not_values_still_work() {
        // A positional after a boolean flag, a flag's own value that looks boolean, and `--`.
        let cli = parse(&["init", "--yes", "{\"initMode\":\"new\"}"]).unwrap();
        assert!(matches!(cli.command, Some(Sub::Init { yes: true, spec: Some(_), .. })));
        let cli = parse(&["--name", "true", "--debug"]).unwrap();
        assert!(cli.name == "true" && cli.debug);
        let cli = parse(&["init", "-f", "true", "-y"]).unwrap();
        assert!(matches!(cli.command, Some(Sub::Init { yes: true, file: Some(ref f), .. }) if f == "true"));
        let cli = parse(&["--debug", "init"]).unwrap();
        assert!(cli.debug && cli.command.is_some());
        assert!(parse(&["init", "-y", "--", "false"]).is_ok());
    }
}
