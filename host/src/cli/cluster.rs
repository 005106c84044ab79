//! `prereg cluster ...` and `prereg migrate`'s subcommands.

use clap::Subcommand;

/// `prereg cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The nodes, whether they are up, their active policy, and how far each
    /// one's index lags behind the store.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}
