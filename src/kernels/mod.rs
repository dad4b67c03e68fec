//! The int8 kernels, one concern per file. Each checks its arguments once, up front, and
//! returns [`crate::Error`] rather than panicking.

pub mod activation;
pub mod add;
mod blocked;
pub mod classify;
pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod layout;
pub mod pool;
pub mod postprocess;
pub mod resize;
pub mod simd;
pub mod softmax;
pub mod transpose_conv;
