//! Every integration test in one binary, so the support module and the crate are compiled and
//! linked once (one link instead of one per file). Each module is one subject; `support` starts
//! the real service in-process against the in-process simulator.

mod support;

mod control;
mod demo;
mod discovery;
mod drills;
mod fidelity;
mod hostile;
mod hostile_clients;
mod layers;
mod nats;
mod service;
mod shard;
mod sigterm;
mod simulator;
mod stream;
