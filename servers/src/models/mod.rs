//! One module per concurrency model; each opens with what it is, where it should win and where
//! it should break, and how to run it.

pub mod async_std_rt;
pub mod blocking;
pub mod fork_per_client;
pub mod io_uring_loop;
pub mod mio_loop;
pub mod mio_multi;
pub mod prefork;
pub mod smol_rt;
pub mod thread_per_client;
pub mod thread_pool;
pub mod tokio_current_thread;
pub mod tokio_rt;
