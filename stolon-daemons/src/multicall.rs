//! The multi-call binary `stolon` (docs/packaging.md): one executable holding the keeper, the sentinel, the
//! proxy and stolonctl, run as `stolon keeper|sentinel|proxy|ctl ARGS` or through a link named after a
//! component (`stolon-keeper ARGS`). This module decides which component a command line means; the binary
//! (`src/bin/stolon.rs`) runs it.

use std::ffi::OsStr;
use std::path::Path;

/// A component of the multi-call binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Keeper,
    Sentinel,
    Proxy,
    Ctl,
}

impl Component {
    /// Every component, in the order of the usage message.
    pub const ALL: [Component; 4] = [Component::Keeper, Component::Sentinel, Component::Proxy, Component::Ctl];

    /// The subcommand naming it: `stolon keeper`.
    pub fn subcommand(self) -> &'static str {
        match self {
            Component::Keeper => "keeper",
            Component::Sentinel => "sentinel",
            Component::Proxy => "proxy",
            Component::Ctl => "ctl",
        }
    }

    /// Its program name, which is also the name of its link: `stolon-keeper`.
    pub fn program(self) -> &'static str {
        match self {
            Component::Keeper => "stolon-keeper",
            Component::Sentinel => "stolon-sentinel",
            Component::Proxy => "stolon-proxy",
            Component::Ctl => "stolonctl",
        }
    }
}

/// What a command line of the multi-call binary asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// Run the component with the command line as it is: the program was called through a link named
    /// after it (`stolon-keeper --version`).
    Run(Component),
    /// Run the component with its program name as `argv[0]` and the first argument dropped
    /// (`stolon keeper --version` runs as `stolon-keeper --version`).
    Subcommand(Component),
    /// Print the usage and succeed (`stolon`, `stolon --help`).
    Usage,
    /// Print the version and succeed (`stolon --version`).
    Version,
    /// An argument that names no component: print it with the usage and fail.
    Unknown(String),
}

/// Decides what to run from `argv[0]` (its file name only) and the first argument.
pub fn dispatch(argv0: &OsStr, first: Option<&OsStr>) -> Dispatch {
    let name = Path::new(argv0).file_name().unwrap_or(argv0);
    if let Some(c) = Component::ALL.into_iter().find(|c| name == c.program()) {
        return Dispatch::Run(c);
    }
    let Some(first) = first else { return Dispatch::Usage };
    if let Some(c) = Component::ALL.into_iter().find(|c| first == c.subcommand() || first == c.program()) {
        return Dispatch::Subcommand(c);
    }
    match first.to_str() {
        Some("-h" | "--help" | "help") => Dispatch::Usage,
        Some("-V" | "--version" | "version") => Dispatch::Version,
        _ => Dispatch::Unknown(first.to_string_lossy().into_owned()),
    }
}

/// The usage message of `stolon`.
pub fn usage() -> String {
    let mut s = String::from(
        "stolon: the stolon-rs components in one program\n\nUsage: stolon <COMPONENT> [ARGS]...\n       \
         <LINK> [ARGS]...   (a link to this program named after a component)\n\nComponents:\n",
    );
    for c in Component::ALL {
        s.push_str(&format!("  {:<10} runs {} (link name: {})\n", c.subcommand(), c.program(), c.program()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(argv0: &str, first: Option<&str>) -> Dispatch {
        dispatch(OsStr::new(argv0), first.map(OsStr::new))
    }

    #[test]
    fn a_link_named_after_a_component_runs_it_with_its_arguments() {
        assert_eq!(d("/usr/local/bin/stolon-keeper", Some("keeper")), Dispatch::Run(Component::Keeper));
        assert_eq!(d("stolon-sentinel", None), Dispatch::Run(Component::Sentinel));
        assert_eq!(d("./stolon-proxy", Some("--help")), Dispatch::Run(Component::Proxy));
        assert_eq!(d("stolonctl", Some("status")), Dispatch::Run(Component::Ctl));
    }

    #[test]
    fn the_first_argument_names_the_component_otherwise() {
        assert_eq!(d("/usr/bin/stolon", Some("keeper")), Dispatch::Subcommand(Component::Keeper));
        assert_eq!(d("stolon", Some("sentinel")), Dispatch::Subcommand(Component::Sentinel));
        assert_eq!(d("stolon", Some("proxy")), Dispatch::Subcommand(Component::Proxy));
        assert_eq!(d("stolon", Some("ctl")), Dispatch::Subcommand(Component::Ctl));
        assert_eq!(d("stolon", Some("stolonctl")), Dispatch::Subcommand(Component::Ctl));
        // Another name for the program itself (a renamed copy) dispatches the same way.
        assert_eq!(d("stolon-0.1.0", Some("keeper")), Dispatch::Subcommand(Component::Keeper));
    }

    #[test]
    fn help_version_and_unknown_arguments() {
        assert_eq!(d("stolon", None), Dispatch::Usage);
        assert_eq!(d("stolon", Some("--help")), Dispatch::Usage);
        assert_eq!(d("stolon", Some("-V")), Dispatch::Version);
        assert_eq!(d("stolon", Some("keepr")), Dispatch::Unknown("keepr".into()));
        assert_eq!(d("stolon", Some("--keeper")), Dispatch::Unknown("--keeper".into()));
    }

    #[test]
    fn the_usage_names_every_component_and_link() {
        let u = usage();
        for c in Component::ALL {
            assert!(u.contains(c.subcommand()) && u.contains(c.program()), "{u}");
        }
    }
}
