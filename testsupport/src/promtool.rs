//! promtool, Prometheus' checker, as the tests use it: [`path`] finds it (`$PROMTOOL`, else
//! `$PATH`), [`check_metrics`] checks an exposition text, [`check_rules_yaml`] a rule group given
//! as text, and [`run`] any other promtool command (`check rules`, `test rules`, `check config`)
//! in a directory. Each [`Failure`] names the command that failed and carries promtool's output;
//! its `Debug` is the same readable text, so `.unwrap()` prints it as is.

use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Exposition text is shown in a failure up to this many bytes.
const SHOWN_TEXT: usize = 20_000;

/// A promtool check that failed, or promtool that could not run.
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// Where promtool is: `$PROMTOOL` when set, else the first `promtool` on `$PATH`.
pub fn path() -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os("PROMTOOL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Failure(format!(
                "PROMTOOL={} is not a file; point it at promtool or unset it",
                p.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Failure(
                "promtool is not on $PATH; install it (Debian package `prometheus`) or set \
                 PROMTOOL to its path"
                    .to_string(),
            )
        })
}

/// Runs `promtool <args>` in `dir` (relative file arguments are relative to it); its stdout.
pub fn run<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Result<String, Failure> {
    let promtool = path()?;
    let shown = describe(args);
    let out = Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure(format!("cannot run {}: {e}", promtool.display())))?;
    outcome(&format!("{shown} (in {})", dir.display()), out)
}

/// `promtool check metrics` on an exposition text (the text format). The failure shows the text.
pub fn check_metrics(text: &str) -> Result<(), Failure> {
    let promtool = path()?;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot run {}: {e}", promtool.display())))?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| Failure(format!("promtool check metrics: {e}")))?;
    if let Some(Err(e)) = written {
        return Err(Failure(format!(
            "promtool check metrics: writing the text to its stdin: {e}"
        )));
    }
    let cut = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| *i >= SHOWN_TEXT)
        .unwrap_or(text.len());
    outcome("promtool check metrics", out)
        .map(|_| ())
        .map_err(|f| {
            let more = if cut < text.len() { "\n[…]" } else { "" };
            Failure(format!(
                "{f}\n--- the text checked ---\n{}{more}",
                &text[..cut]
            ))
        })
}

/// `promtool check rules` on a rule file given as text (YAML; JSON is YAML too), written to a
/// temporary `name`.
pub fn check_rules_yaml(name: &str, yaml: &str) -> Result<(), Failure> {
    let dir = tempfile::tempdir()
        .map_err(|e| Failure(format!("a temporary directory for {name}: {e}")))?;
    std::fs::write(dir.path().join(name), yaml)
        .map_err(|e| Failure(format!("writing {name} for promtool: {e}")))?;
    run(dir.path(), &["check", "rules", name]).map(|_| ())
}

fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut s = String::from("promtool");
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

fn outcome(what: &str, out: Output) -> Result<String, Failure> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    Err(Failure(format!(
        "{what} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )))
}
