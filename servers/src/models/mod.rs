//! One module per concurrency model; each opens with what it is, where it should win and where
//! it should break, and how to run it.

pub mod blocking;
pub mod fork_per_client;
pub mod mio_loop;
pub mod thread_per_client;
pub mod tokio_rt;
