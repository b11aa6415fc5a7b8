//! Test support shared by the tests of every echobench crate; a dev-dependency only.
//!
//! [`modgraph`] reads a crate's modules and the modules each one imports, so that every crate
//! can assert in one unit test that its modules import one way (no circle).

pub mod modgraph;
