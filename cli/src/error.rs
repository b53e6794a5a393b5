//! The command's errors: what went wrong, what to do about it, and the exit
//! status (1 for a failure, 2 for a usage error).

use std::{fmt, path::Path};

/// A failed command: printed as `evbus: error: ...` plus a hint, with its
/// exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    hint: Option<String>,
    usage: bool,
}

impl CliError {
    /// The command could not do its job (exit status 1).
    pub(crate) fn failure(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: None,
            usage: false,
        }
    }

    /// The command line asked for something impossible (exit status 2).
    pub(crate) fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            hint: None,
            usage: true,
        }
    }

    /// Adds what to do about it.
    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// 1 for a failure, 2 for a usage error.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.usage { 2 } else { 1 }
    }

    /// A journal error, with what an operator can do about it.
    pub(crate) fn journal(dir: &Path, e: evbus_journal::Error) -> CliError {
        use evbus_journal::Error;
        let shown = dir.display();
        match e {
            Error::NotFound { .. } => {
                CliError::failure(format!("no journal in {shown}: it has no segment files"))
                    .hint("pass the directory a Journal or Recorder writes to (it holds files named like 00000000000000000000.seg)")
            }
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                CliError::failure(format!("{e}")).hint(format!(
                    "check the path: {shown} does not exist or is not a journal directory"
                ))
            }
            Error::Corrupt { .. } | Error::BadHeader { .. } | Error::BadMagic { .. } => CliError::failure(format!(
                "the journal in {shown} is damaged: {e}"
            ))
            .hint(format!(
                "run `evbus inspect {shown}` to see the damage and `evbus inspect {shown} --repair` to cut it out (the records in damaged ranges are lost)"
            )),
            Error::Locked { .. } => CliError::failure(format!("{e}"))
                .hint("another process writes this journal; stop it first (readers do not need the lock, writers and --repair do)"),
            other => CliError::failure(format!("journal {shown}: {other}")),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evbus: error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
