//! ticketbench's load generator: goose scenarios against any server that
//! speaks the contract, our own microsecond HDR recording (raw and
//! corrected for coordinated omission), an open model, interval logs that
//! merge exactly, the scaling run and the reports.

pub mod cgroup;
pub mod console;
pub mod dashboard;
pub mod faults;
pub mod instances;
pub mod job;
pub mod machine;
pub mod merge;
pub mod pacing;
pub mod record;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenarios;
pub mod setup;
pub mod shard;
pub mod sharded;
pub mod summary;
pub mod thresholds;
