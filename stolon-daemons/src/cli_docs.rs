//! Shell completion scripts (`stolonctl completion bash|zsh|fish`) and man pages (`stolonctl man DIR`)
//! generated from a binary's clap definition, so they always match its flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Command;
pub use clap_complete::Shell;

/// Writes the completion script of `cmd` for `shell` to `out`.
pub fn write_completion(shell: Shell, mut cmd: Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes one man page for `cmd` (`<name>.1`) and one per visible subcommand (`<name>-<sub>.1`, nested ones
/// too) into `dir`, which is created if missing. Returns the pages of `cmd` now in `dir`, sorted.
pub fn write_man_pages(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let context =
        |what: &str, e: std::io::Error| std::io::Error::new(e.kind(), format!("{what} {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| context("cannot create", e))?;
    clap_mangen::generate_to(cmd, dir).map_err(|e| context("cannot write man pages into", e))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| context("cannot list", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let file = p.file_name().unwrap_or_default().to_string_lossy();
            file == format!("{name}.1") || (file.starts_with(&format!("{name}-")) && file.ends_with(".1"))
        })
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn sample() -> Command {
        Command::new("tool")
            .about("A tool")
            .arg(Arg::new("cluster-name").long("cluster-name"))
            .subcommand(Command::new("status").arg(Arg::new("watch").long("watch").action(ArgAction::SetTrue)))
            .subcommand(Command::new("init"))
    }

    #[test]
    fn completion_names_flags_and_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completion(shell, sample(), &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["tool", "status", "init", "cluster-name", "watch"] {
                assert!(text.contains(word), "{shell:?} completion lacks {word}:\n{text}");
            }
        }
    }

    #[test]
    fn man_pages_for_the_command_and_each_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_man_pages(sample(), &dir.path().join("man1")).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["tool-init.1", "tool-status.1", "tool.1"]);
        let page = std::fs::read_to_string(dir.path().join("man1/tool-status.1")).unwrap();
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
        assert!(page.contains("watch"), "{page}");
    }
}
