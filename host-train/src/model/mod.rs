//! The model description: the layer list of a `model.toml` ([`spec`]) and the Rust builder that
//! writes the same description in code ([`builder`]).

pub mod builder;
pub mod spec;
