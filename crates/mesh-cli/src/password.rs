//! Reading a password: one line of stdin for scripts (`--password-stdin`), or typed twice at the
//! terminal with echo off. Never from a flag: command lines end up in shell history and `ps`.

use anyhow::{bail, Context};
use mesh_core::Secret;
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use std::io::{BufRead, IsTerminal, Write};

/// The first line of stdin, without its line ending (`--password-stdin`). At a terminal it is
/// read with echo off.
pub async fn from_stdin() -> anyhow::Result<Secret<String>> {
    let password = if std::io::stdin().is_terminal() { hidden(&["Password: "]).await?.remove(0) } else { read_line()? };
    if password.is_empty() {
        bail!("--password-stdin: no password on stdin (expected one line)");
    }
    Ok(Secret::new(password))
}

/// Asks twice at the terminal, echo off, and insists both match. Refuses when stdin is not a
/// terminal: a pipe must be meant, so `--password-stdin` must say so.
pub async fn prompt_twice() -> anyhow::Result<Secret<String>> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pipe the password in with --password-stdin");
    }
    let mut typed = hidden(&["New password: ", "Again: "]).await?.into_iter();
    let (first, again) = (typed.next().unwrap_or_default(), typed.next().unwrap_or_default());
    if first.is_empty() {
        bail!("no password typed; nothing was changed");
    }
    if first != again {
        bail!("the passwords do not match; nothing was changed");
    }
    Ok(Secret::new(first))
}

/// One line per prompt, read from the terminal on stdin with echo off.
async fn hidden(prompts: &'static [&'static str]) -> anyhow::Result<Vec<String>> {
    let echo = EchoOff::new()?;
    // Ctrl-C would otherwise end the process with echo still off (the default SIGINT action runs
    // no destructor). Once tokio listens for it, the default action is gone for good, so this
    // listener stays until the command ends: Ctrl-C still ends it, with the terminal given back.
    let saved = echo.0.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
            eprintln!();
            std::process::exit(130);
        }
    });
    let typing = tokio::task::spawn_blocking(|| prompts.iter().map(|p| prompt_line(p)).collect());
    typing.await.context("reading the password")?
}

/// Prints `prompt` on stderr and reads one line of stdin.
fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    read_line()
}

fn read_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The terminal on stdin with echo off (the newline still echoed, so the next prompt starts on
/// its own line) until dropped.
struct EchoOff(Termios);

impl EchoOff {
    fn new() -> anyhow::Result<EchoOff> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).context("cannot read the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        // TCSANOW, not TCSAFLUSH: a line typed (or pasted) ahead is kept, not thrown away.
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the terminal's echo off")?;
        Ok(EchoOff(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}
