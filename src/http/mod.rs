//! placeholder
/// placeholder
pub fn app() {}
