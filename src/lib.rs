//! echobench: the suite that runs every echo-server model through the same workloads and
//! reports how they compare. The `compare` and `report` commands arrive with the comparison
//! runner; this crate also hosts the criterion benches in `benches/`.
