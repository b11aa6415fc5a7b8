//! Test support shared by the tests of every echobench crate; a dev-dependency only.
//!
//! [`modgraph`] reads a crate's modules and the modules each one imports, so that every crate
//! can assert in one unit test that its modules import one way (no circle). [`faultproxy`] is a
//! TCP proxy that slices, stalls, resets and back-pressures, for tests of echo through a network
//! that misbehaves.

pub mod faultproxy;
pub mod modgraph;
pub mod netns;
