//! loadgen: the shared load generator that drives every echo-server model with the same
//! workloads and records latency in HdrHistogram. The engine arrives with its own issue.
