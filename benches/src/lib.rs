//! Criterion benchmarks of the hot paths; see `benches/`.
//!
//! Run with: `cargo bench -p ticketbench-benches`
