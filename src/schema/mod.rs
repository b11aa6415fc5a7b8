//! The on-disk schema: every record a comparison writes and reads back, in one module that
//! every stage imports and none owns.
//!
//! - [`run`]: what a run was (`raw/<id>.run.json`: [`RunSpec`], [`Timing`], [`Status`],
//!   [`ServerUsage`]), in the vocabulary of the matrix ([`Profile`], [`Workload`], defined with
//!   every fact about each workload in [`crate::workload`]);
//! - [`environment`]: `environment.json`, the machine and the settings, with the definitions
//!   of the [`external`] servers compared;
//! - [`summary`]: `summary.json`, the figures computed from `raw/`.
//!
//! loadgen's own report (`raw/<id>.json`, `raw/<id>.hlog`) is [`loadgen::Report`]. Types here
//! hold data and name it; they compute nothing beyond what reading it needs.

pub mod environment;
pub mod external;
pub mod run;
pub mod summary;

pub use crate::workload::{Profile, Timing, Workload};
pub use environment::{Environment, PythonRun, Skipped};
pub use external::ExternalServer;
pub use run::{AgentRun, RunRecord, RunSpec, ServerSpec, ServerUsage, Status};
pub use summary::{
    AgentFigures, AttackFigures, AttackModel, Capacity, Cell, ChatFigures, ChatModel, Ci, Claim,
    ClaimGroup, DatagramCounts, Expected, Findings, Headline, Kept, LeftOut, Margin, MarginVerdict,
    MemoryPerConnection, Ranking, Resampling, SharingCost, SlowMember, SlowVerdict, Spread,
    Standing, Summary, Trouble, Verdict, WorkClassFigures,
};

/// Version of the `raw/*.run.json` and `summary.json` schemas.
pub const SCHEMA_VERSION: u32 = 1;
