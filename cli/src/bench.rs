//! `evbus bench`: placeholder until the report moves into evbus-benches.

use crate::{error::CliError, ui::Ui};

/// `evbus bench`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {}

pub(crate) fn run(_: &BenchArgs, _: Ui) -> Result<(), CliError> {
    Err(CliError::failure("not yet"))
}
